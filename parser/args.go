package parser

import (
	"maps"
	"slices"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// argEnv is the environment FROM lines are expanded in. It implements
// shell.EnvGetter.
type argEnv map[string]string

func (e argEnv) Get(k string) (string, bool) { v, ok := e[k]; return v, ok }
func (e argEnv) Keys() []string              { return slices.Sorted(maps.Keys(e)) }

var _ shell.EnvGetter = argEnv(nil)

// globalEnv builds the scope of FROM lines: the platform args (a --build-arg of the
// same name overrides them, as in BuildKit), then each ARG before the first FROM
// in order. An ARG's default is expanded in the scope built so far; a --build-arg
// replaces the default without expanding it.
func (b *graphBuilder) globalEnv(metaArgs []*instructions.ArgCommand) (argEnv, error) {
	env := argEnv{}
	for k, v := range b.predefined() {
		if ov, ok := b.opts.BuildArgs[k]; ok {
			v = ov
		}
		env[k] = v
	}
	for _, cmd := range metaArgs {
		for _, kv := range cmd.Args {
			arg := Arg{Key: kv.Key}
			if v, ok := b.opts.BuildArgs[kv.Key]; ok {
				arg.Value = &v
			} else if kv.Value != nil {
				res, err := b.expand(*kv.Value, env)
				if err != nil {
					return nil, b.src.wrap(err, lineOf(cmd.Location()))
				}
				v := res.Result
				arg.Value = &v
			}
			if arg.Value != nil {
				env[kv.Key] = *arg.Value
			}
			b.g.GlobalArgs = append(b.g.GlobalArgs, arg)
		}
	}
	return env, nil
}

// buildArgs is Graph.BuildArgs: the platform args with the user's build args on
// top, so the solver can give a stage's `ARG TARGETARCH` its value.
func (b *graphBuilder) buildArgs() map[string]string {
	m := b.predefined()
	maps.Copy(m, b.opts.BuildArgs)
	return m
}

// predefined are the args with a value before any declaration: the platform args
// and TARGETSTAGE (the target's name, "default" when it has none, as in BuildKit).
func (b *graphBuilder) predefined() map[string]string {
	m := PlatformArgs(b.opts.TargetPlatform, b.opts.BuildPlatform)
	target := b.opts.Target
	if target == "" && len(b.raw) > 0 {
		target = b.raw[len(b.raw)-1].from.Name
	}
	if target == "" {
		target = "default"
	}
	m["TARGETSTAGE"] = target
	return m
}

// unusedBuildArgs lists, sorted, the --build-arg keys that no global ARG and no
// ARG of a needed stage declares, leaving out predefined and frontend args.
func (b *graphBuilder) unusedBuildArgs(stages []*rawStage) []string {
	declared := map[string]bool{}
	for _, a := range b.g.GlobalArgs {
		declared[a.Key] = true
	}
	for _, i := range b.g.Needed {
		for _, c := range stages[i].commands {
			if a, ok := c.Command.(*instructions.ArgCommand); ok {
				for _, kv := range a.Args {
					declared[kv.Key] = true
				}
			}
		}
	}
	var unused []string
	for k := range b.opts.BuildArgs {
		if !declared[k] && !IsPredefinedArg(k) && !consumedByFrontend(k) {
			unused = append(unused, k)
		}
	}
	slices.Sort(unused)
	return unused
}
