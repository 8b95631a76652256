package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/cache"
	"github.com/kiln-build/kiln/dockerfile"
	"github.com/kiln-build/kiln/exec"
	"github.com/kiln-build/kiln/image"
	"github.com/kiln-build/kiln/internal/userns"
	"github.com/kiln-build/kiln/layers"
	"github.com/kiln-build/kiln/parser"
	"github.com/kiln-build/kiln/snapshot"
	"github.com/kiln-build/kiln/solver"
	"github.com/kiln-build/kiln/source"
	"github.com/kiln-build/kiln/source/remote"
)

// buildOptions are the flags of kiln build.
type buildOptions struct {
	file          string
	tags          []string
	buildArgs     []string
	target        string
	outputs       []string
	labels        []string
	iidFile       string
	metadataFile  string
	annotations   []string
	progress      string
	noCache       bool
	noCacheFilter []string
	root          string
	platform      string
	pull          bool
	offline       bool
	push          bool
	insecure      []string
	memory        string
	cpus          float64
	pidsLimit     int64
	network       string
	jobs          int
	buildContexts []string
	secrets       []string
	ssh           []string
	allow         []string
	check         bool
	call          string
	repro         bool
	isolated      bool // this process is in its private mount namespace already
	sandbox       sandboxFlags
	quiet         bool
	load          bool
	cacheFrom     []string
	cacheTo       []string
	provenance    string
	sbom          string
	attest        []string

	// registries is the build's one registry client (set by runBuild, not a flag):
	// every pull, push and remote-cache call reuses its connections and tokens.
	registries *image.Client
}

func newBuildCmd() *cobra.Command {
	var o buildOptions
	cmd := &cobra.Command{
		Use:   "build [flags] CONTEXT",
		Short: "Build an image from a Dockerfile",
		Long: `Build an image from a Dockerfile and a context directory.

Examples:
  kiln build -t app:v1 -o type=oci,dest=app.tar .
  kiln build -f docker/Dockerfile --target test -o type=local,dest=out .
  kiln build -t registry.example.com/app:v1 --push .`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("kiln build needs exactly one CONTEXT argument (a directory), got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd.Context(), o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr(), cmd.InOrStdin())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "", `Dockerfile path (default "CONTEXT/Dockerfile"; "-" reads stdin)`)
	f.StringArrayVarP(&o.tags, "tag", "t", nil, "name and tag of the image, e.g. app:v1 (repeatable)")
	f.StringArrayVar(&o.annotations, "annotation", nil, "add an annotation to the image manifest: KEY=VALUE or manifest:KEY=VALUE (repeatable)")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "build-time variable KEY=VALUE, or KEY to take it from the environment (repeatable)")
	f.StringVar(&o.target, "target", "", "build this stage instead of the last one")
	f.StringArrayVarP(&o.outputs, "output", "o", nil, "output: type=oci|docker|tar,dest=FILE|-; type=local,dest=DIR; type=registry (repeatable)")
	f.StringArrayVar(&o.labels, "label", nil, "set a label on the image, KEY=VALUE (repeatable)")
	f.StringVar(&o.iidFile, "iidfile", "", "write the image ID (config digest) to this file")
	f.StringVar(&o.metadataFile, "metadata-file", "", "write build result metadata (JSON) to this file")
	f.StringVar(&o.progress, "progress", "auto", "progress output: auto, plain, tty, rawjson or quiet")
	f.BoolVar(&o.noCache, "no-cache", false, "do not use the cache for any step")
	f.StringArrayVar(&o.noCacheFilter, "no-cache-filter", nil, "do not use the cache for the named stage (repeatable)")
	f.StringVar(&o.root, "root", defaultRoot(), "directory of kiln's cache and state")
	f.StringVar(&o.platform, "platform", "", "target platforms, comma-separated, e.g. linux/amd64,linux/arm64: several make an image index (default: the host's)")
	f.BoolVar(&o.pull, "pull", false, "fetch base image manifests again even when the store has the image (tags are resolved at every build anyway)")
	f.BoolVar(&o.offline, "offline", false, "use base images already in the store without asking the registry: a tag keeps the image it named when last pulled")
	f.BoolVar(&o.push, "push", false, "push the image to the registry of each -t tag (same as -o type=registry)")
	f.StringArrayVar(&o.insecure, "insecure-registry", nil, "talk plain HTTP to this registry host (localhost and 127.0.0.1 always are)")
	f.StringVar(&o.memory, "memory", "", "memory limit of each RUN step, e.g. 512m or 2g")
	f.Float64Var(&o.cpus, "cpus", 0, "CPU limit of each RUN step, e.g. 1.5")
	f.Int64Var(&o.pidsLimit, "pids-limit", 4096, "process limit of each RUN step")
	f.StringVar(&o.network, "network", "default", "network of RUN steps: default (the host's) or none")
	f.StringArrayVar(&o.sandbox.addHosts, "add-host", nil, "add HOST:IP to the /etc/hosts of RUN steps (repeatable)")
	f.StringVar(&o.sandbox.shmSize, "shm-size", "", "size of /dev/shm in RUN steps, e.g. 128m (default 64m)")
	f.StringArrayVar(&o.sandbox.ulimits, "ulimit", nil, "resource limit of RUN steps, e.g. nofile=1024:4096 (repeatable)")
	f.StringArrayVar(&o.buildContexts, "build-context", nil, "named context NAME=DIR, NAME=oci-layout:///path[:tag], NAME=docker-image://REF (repeatable)")
	f.IntVar(&o.jobs, "jobs", runtime.NumCPU(), "how many steps may run at once")
	f.StringArrayVar(&o.secrets, "secret", nil, "secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR (repeatable)")
	f.StringArrayVar(&o.ssh, "ssh", nil, "ssh agent for RUN --mount=type=ssh: default, or ID=SOCKET (repeatable)")
	f.StringArrayVar(&o.allow, "allow", nil, "grant an entitlement: security.insecure, network.host (repeatable)")
	f.BoolVar(&o.check, "check", false, "run the build checks only: print each finding, exit 1 if there is any")
	f.StringVar(&o.call, "call", "build", "what to do with the Dockerfile: build, check (as --check), outline (its args, secrets and ssh) or targets (its stages)")
	f.BoolVar(&o.repro, "repro-check", false, "build twice from nothing (fresh roots, another umask and --jobs) and report whether the images are the same, or the first file that differs; needs SOURCE_DATE_EPOCH")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print nothing but warnings and errors, and the image ID on success")
	f.BoolVar(&o.load, "load", false, "load the image into the local Docker daemon, or podman's containers-storage (same as -o type=load)")
	f.StringArrayVar(&o.cacheFrom, "cache-from", nil, "read step cache from type=registry,ref=R, type=local,src=DIR or type=s3,bucket=B,region=R (repeatable, read in order)")
	f.StringArrayVar(&o.cacheTo, "cache-to", nil, "export step cache to type=registry,ref=R, type=local,dest=DIR or type=inline (in the image) [,mode=min|max,image-manifest=true,ignore-error=true]")
	f.StringVar(&o.provenance, "provenance", "", "attach a SLSA provenance: true, false, min, max, or mode=min|max,version=v1|v0.2,builder-id=URI (default: mode=min with --push or a multi-platform index)")
	f.StringVar(&o.sbom, "sbom", "", "attach an SPDX SBOM of the image: true, false, or scan-stage=true,scan-context=true")
	f.StringArrayVar(&o.attest, "attest", nil, "attach an attestation: type=provenance[,mode=max...] or type=sbom[,...] (repeatable)")
	return cmd
}

func defaultRoot() string {
	if os.Geteuid() == 0 && userns.Current() != userns.User {
		return "/var/lib/kiln"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "kiln")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "kiln")
}

func runBuild(ctx context.Context, o buildOptions, contextDir string, stdout, stderr io.Writer, stdin io.Reader) (err error) {
	switch o.call {
	case "build", "":
	case "check":
		o.check = true
	case "outline", "targets":
		return runCall(o, contextDir, stdout, stdin)
	default:
		return fmt.Errorf("--call=%s: use build, check, outline or targets", o.call)
	}
	if o.check {
		return runCheck(o, contextDir, stdout, stdin)
	}
	if o.repro {
		return runReproCheck(ctx, o, contextDir, stdout, stderr, stdin)
	}
	if o.quiet {
		o.progress = "quiet"
	}
	// Every mount kiln makes lives in a private mount namespace, so none survives the
	// process, even on kill -9. In its user namespace kiln is in one already (Enter
	// made it with the user namespace, private): a second re-exec would only cost time
	// (one exec of kiln, 50-60 ms of a warm rootless W1 here). --repro-check isolates
	// once for its two builds.
	if !o.isolated && userns.Current() == userns.Host {
		if err := exec.Isolate(); err != nil {
			return fmt.Errorf("enter a private mount namespace: %w", err)
		}
	}
	// What killed builds left: their step cgroups here, their temp files when the
	// store and the snapshotter open, their partial outputs when one is written.
	exec.RemoveStaleCgroups()
	if stop, err := startProfiles(); err != nil {
		return err
	} else {
		defer stop()
	}

	outputs, err := o.parseOutputs()
	if err != nil {
		return err
	}
	buildArgs, err := parseBuildArgs(o.buildArgs)
	if err != nil {
		return err
	}
	if err := resolveSourceDateEpoch(buildArgs, contextDir); err != nil {
		return err
	}
	annotations, err := parseAnnotationFlags(o.annotations)
	if err != nil {
		return err
	}
	for i := range outputs {
		outputs[i].Annotations = mergeAnnotations(annotations, outputs[i].Annotations)
	}
	labels, err := parseKeyValues("--label", o.labels)
	if err != nil {
		return err
	}
	limits, err := o.limits()
	if err != nil {
		return err
	}
	named := map[string]remote.NamedContext{}
	for _, bc := range o.buildContexts {
		k, v, ok := strings.Cut(bc, "=")
		if !ok || k == "" || v == "" {
			return fmt.Errorf("invalid --build-context %q: want NAME=VALUE", bc)
		}
		nc, err := remote.ParseNamedContext(v)
		if err != nil {
			return err
		}
		named[k] = nc
	}
	caches, err := o.remoteCaches()
	if err != nil {
		return err
	}
	secrets, sshAgents, err := o.sessionOptions()
	if err != nil {
		return err
	}
	network := exec.NetworkHost
	switch o.network {
	case "default", "host", "":
	case "none":
		network = exec.NetworkNone
	default:
		return fmt.Errorf("--network=%s is not supported (use default or none)", o.network)
	}
	if err := o.checkProgressFlag(); err != nil {
		return err
	}
	extraHosts, shmSize, ulimits, err := o.sandbox.parse()
	if err != nil {
		return err
	}
	if o.pull && o.offline {
		return fmt.Errorf("--pull asks the registry and --offline forbids it: use one of them")
	}
	for _, out := range outputs {
		if out.Dest == "-" && o.progressMode(stderr) == "tty" && isTerminal(stdout) {
			return fmt.Errorf("refusing to write an image tarball to a terminal; redirect stdout or use dest=FILE")
		}
	}

	ctxInfo, err := os.Stat(contextDir)
	if err != nil {
		return fmt.Errorf("build context %s: %w", contextDir, err)
	}
	if !ctxInfo.IsDir() {
		return fmt.Errorf("build context %s is not a directory", contextDir)
	}
	dfPath, dfName, dfData, err := readDockerfile(o.file, contextDir, stdin)
	if err != nil {
		return err
	}
	// An error at a Dockerfile line is shown with an excerpt of it.
	defer func() { err = withDockerfile(err, dfName, dfData) }()
	plats, err := o.targetPlatforms()
	if err != nil {
		return err
	}
	if err := checkOutputsForPlatforms(outputs, plats); err != nil {
		return err
	}
	attest, err := o.parseAttestations(outputs, plats)
	if err != nil {
		return err
	}
	attestReq := provenanceRequest{
		buildArgs: buildArgs, labels: labels, target: o.target, dockerfileName: dfName, dockerfile: dfData,
		multiPlatform: len(plats) > 1, started: time.Now(), epoch: sourceDateEpoch(buildArgs), contextDir: contextDir,
	}
	var scanStage func(context.Context, v1.Platform, string, string) error
	if attest.sbom != nil {
		attest.stages = newStageSBOMs(attestReq.created())
		scanStage = attest.stages.scan
	}
	// The Dockerfile is parsed once per target platform: TARGETARCH and the rest can
	// change FROM lines and which stages are needed.
	targets := make([]dockerfile.Target, len(plats))
	for i, p := range plats {
		g, err := parser.Parse(bytes.NewReader(dfData), parser.Options{
			Filename: dfName, BuildArgs: buildArgs, Target: o.target, TargetPlatform: p.String(),
		})
		if err != nil {
			return err
		}
		targets[i] = dockerfile.Target{Platform: p, Graph: g}
	}
	// Warnings, checks and the cache export's stages are those of the first
	// platform's graph: the stages are the same for every platform.
	graph := targets[0].Graph
	bctx, err := source.Open(contextDir, dfPath)
	if err != nil {
		return err
	}

	// Progress first: the store warns through it, from Open on (a damaged index).
	prog := newProgress(o.progressMode(stderr), stderr)
	defer prog.Close()
	store, err := cache.Open(ctx, o.root, cache.WithWarnings(prog.Warn))
	if err != nil {
		return fmt.Errorf("open kiln root %s: %w", o.root, err)
	}
	defer store.Close()
	snaps, err := snapshot.New(ctx, store.SnapshotsDir())
	if err != nil {
		return fmt.Errorf("open snapshots in %s: %w", o.root, err)
	}
	defer func() {
		if err := snaps.Wait(); err != nil {
			prog.Warn(err.Error())
		}
	}()
	defer noteSandbox(prog.Info, prog.Warn, snaps)()
	initBin := &exec.InitBinary{Sum: initSum, Warn: prog.Warn}
	defer initBin.Close()

	if o.registries, err = image.NewClient(0); err != nil {
		return err
	}
	defer o.registries.Close()

	var solveStore solver.Store = store
	rstore, err := caches.open(ctx, store, o.registries, o.insecure, sourceDateEpoch(buildArgs), prog)
	if err != nil {
		return err
	}
	if rstore != nil {
		solveStore = rstore
	}

	if noOutput(outputs) && o.iidFile == "" && o.metadataFile == "" {
		prog.Warn("No output specified: the result stays in kiln's build cache only. " +
			"To keep it use -o type=oci,dest=FILE (or type=docker|local|tar), or --push with -t REGISTRY/NAME:TAG")
	}
	for _, w := range graph.Warnings {
		prog.Warn(w)
	}
	checkFindings := len(graph.Checks)
	// As BuildKit, error=true fails before building when parsing found something.
	if checkFindings > 0 && parser.CheckErrors(graph.CheckDirective) {
		return fmt.Errorf("build checks found %d problem(s) and the check directive says error=true", checkFindings)
	}
	for _, a := range graph.UnusedBuildArgs {
		prog.Warn(fmt.Sprintf("build arg %s was given but no ARG in the stages built consumed it", a))
	}

	compression := layers.Gzip
	level, force := 0, false
	needRootfs, keepFileTimes := false, false
	for _, out := range outputs {
		if out.Compression != "" {
			compression = layers.Compression(out.Compression)
		}
		if out.Level != 0 {
			level = out.Level
		}
		force = force || out.Force
		keepFileTimes = keepFileTimes || out.NoRewriteTimestamp
		if out.Type == "local" || out.Type == "tar" {
			needRootfs = true
		}
	}
	if attest.sbom != nil {
		needRootfs = true // the SBOM is of the final filesystem
	}
	// A damaged store blob found while building or writing the outputs (every blob
	// is verified as it is read) is removed and the build done again, which makes or
	// pulls what needed it; each attempt can find one more (cache.Store.RepairBlobs).
	parseFindings := checkFindings
	var results []*dockerfile.Result
	var built image.Built
	var closeSandboxes []chan error
	defer func() {
		for _, c := range closeSandboxes {
			if err := <-c; err != nil {
				prog.Warn(err.Error())
			}
		}
	}()
	err = store.RepairBlobs(maxRepairs, prog.Warn, func() error {
		checkFindings = parseFindings
		var runFindings atomic.Int64
		if attest.stages != nil {
			attest.stages.reset()
		}
		// Each RUN step's sandbox is started while the step before it runs; the one
		// started for a step that never comes is removed when the steps are done.
		sandboxes := &exec.Sandboxes{}
		results, err = dockerfile.BuildPlatforms(ctx, dockerfile.Options{
			Graph: graph, Filename: dfName, Context: bctx, Store: solveStore, Snapshots: snaps,
			NoCache: o.noCache, NoCacheFilter: o.noCacheFilter, Labels: labels,
			Pull: pullOptions(ctx, o), Limits: limits, Network: network,
			ExtraHosts: extraHosts, ShmSize: shmSize, Ulimits: ulimits,
			Compression: compression, CompressionLevel: level, ForceCompression: force,
			SourceDateEpoch: sourceDateEpoch(buildArgs), KeepFileTimes: keepFileTimes,
			NamedContexts: named, Jobs: o.jobs, Progress: prog.Event, NeedRootfs: needRootfs,
			Executor: solver.SandboxExecutor{Init: initBin, Sandboxes: sandboxes},
			Secrets:  secrets, SSH: sshAgents, Entitlements: o.allow,
			ScanStage: scanStage, ScanAllStages: attest.sbom != nil && attest.sbom.scanStage,
			ScanContext: attest.sbom != nil && attest.sbom.scanContext,
			// Stages report from goroutines of their own.
			Warn:   func(w string) { runFindings.Add(1); prog.Warn(w) },
			Notice: prog.Warn,
		}, targets)
		// Removing it (and the cgroups of the last steps) overlaps the outputs; the
		// build waits for it before it returns.
		closing := make(chan error, 1)
		go func() { closing <- sandboxes.Close() }()
		closeSandboxes = append(closeSandboxes, closing)
		checkFindings += int(runFindings.Load())
		if err == nil && checkFindings > 0 && parser.CheckErrors(graph.CheckDirective) {
			return fmt.Errorf("build checks found %d problem(s) and the check directive says error=true", checkFindings)
		}
		if err == nil {
			// Each platform's image carries its own inline cache.
			for _, r := range results {
				if err = caches.inline(ctx, rstore, r.Result, graph, sourceDateEpoch(buildArgs), prog); err != nil {
					break
				}
			}
		}
		if err == nil {
			// Every result lists the steps of the whole build (one engine); the
			// last one made has them all.
			err = caches.export(ctx, rstore, results[len(results)-1].Result, graph, o.registries, o.insecure, prog)
		}
		if err == nil {
			built, err = builtImage(plats, results, o.tags, store, snaps, prog)
		}
		if err == nil {
			built.SourceDateEpoch = sourceDateEpoch(buildArgs)
			err = attest.attach(ctx, &built, results, plats, attestReq, outputs, prog)
		}
		if err == nil {
			caches.prefetch(rstore, built, outputs)
			err = writeOutputs(ctx, o, outputs, built, store, stdout, prog)
		}
		return err
	})
	if err != nil {
		return err
	}
	caches.summary(rstore, prog)
	if err := writeResultFiles(o, built); err != nil {
		return err
	}
	if o.quiet {
		id, _, err := builtDigests(built)
		if err != nil {
			return fmt.Errorf("image ID: %w", err)
		}
		fmt.Fprintln(stdout, id)
	}
	autoGC(ctx, store, snaps, prog.Warn)
	return nil
}

// maxRepairs bounds how many builds one kiln build runs when it finds damaged blobs.
const maxRepairs = 4

// readDockerfile returns the Dockerfile's path (for the ignore file beside it), the
// name errors use, and its bytes.
func readDockerfile(file, contextDir string, stdin io.Reader) (string, string, []byte, error) {
	if file == "-" {
		data, err := io.ReadAll(io.LimitReader(stdin, 64<<20))
		if err != nil {
			return "", "", nil, fmt.Errorf("read Dockerfile from stdin: %w", err)
		}
		return "", "Dockerfile", data, nil
	}
	named := file != ""
	if !named {
		file = filepath.Join(contextDir, "Dockerfile")
	}
	fi, err := os.Stat(file)
	switch {
	case errors.Is(err, fs.ErrNotExist) && named:
		return "", "", nil, fmt.Errorf("read Dockerfile: %s does not exist (-f is relative to the current directory, not to the context)", file)
	case errors.Is(err, fs.ErrNotExist):
		return "", "", nil, fmt.Errorf("read Dockerfile: the context %s has no Dockerfile: add one, or name yours with -f", contextDir)
	case err != nil:
		return "", "", nil, fmt.Errorf("read Dockerfile: %w", err)
	}
	if fi.IsDir() {
		return "", "", nil, fmt.Errorf("Dockerfile %s is a directory; use -f to name the file", file)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", "", nil, fmt.Errorf("read Dockerfile: %w", err)
	}
	return file, filepath.Base(file), data, nil
}

// noOutput says no output writes or pushes anything (an image output without
// push=true keeps the result in the cache only, as with buildx's container driver).
func noOutput(outs []outputSpec) bool {
	for _, out := range outs {
		if out.Push || (out.Type != "image" && out.Type != "registry") {
			return false
		}
	}
	return true
}

func (o buildOptions) parseOutputs() ([]outputSpec, error) {
	var outs []outputSpec
	for _, s := range o.outputs {
		out, err := parseOutput(s)
		if err != nil {
			return nil, err
		}
		if err := checkDest(out); err != nil {
			return nil, err
		}
		outs = append(outs, out)
	}
	if o.push {
		outs = append(outs, outputSpec{Type: "registry", Push: true})
	}
	if o.load {
		outs = append(outs, outputSpec{Type: "load"})
	}
	for _, out := range outs {
		if o.quiet && out.Dest == "-" {
			return nil, fmt.Errorf("--quiet prints the image ID on stdout, where -o %s,dest=- would write the image: write it to a file", out.Type)
		}
	}
	for _, out := range outs {
		if out.Push && len(o.tags) == 0 && out.Name == "" {
			return nil, fmt.Errorf("pushing needs a name: give -t REGISTRY/NAME:TAG")
		}
	}
	return outs, nil
}
