package solver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// opKeyVersion is part of every step key. Bump it when the meaning of a field
// changes (not when a field is added: an added field changes every key by itself,
// since the encoding has no omitempty).
// v5: ADD applies a tar hard link's header to the inode and makes dest's directories
// without --chmod's mode when its first source is an archive (BuildKit's results).
// v6: a copied-up directory whose lower the layers below hide under an opaque
// ancestor stays in the layer (snapshot.lowerPath looked at the nearest ancestor
// only), and ".wh." names become whiteouts.
const opKeyVersion = "kiln-op-v6"

// Op is a filesystem step (RUN, COPY/ADD, WORKDIR) as a plain value: everything that
// can change the tree the step leaves or what it sees while it runs. Its key is the
// digest of its canonical encoding (key), and nothing else: no formatted strings, no
// maps, no field that is there "for information". A field added here is covered by
// TestOpKeyCoversEveryField, which changes every field by reflection.
//
// What is deliberately not in it: how the layer is exported (compression, mtimes
// clamped to SOURCE_DATE_EPOCH: export transforms of the cached layer, export.go), a
// cache mount's id and sharing (as BuildKit:
// they say which dir to use, not what the step produces), secret values, the ssh
// agent's socket, and per-file digests (the content digests cover them; they are
// kept beside the op only to explain a miss).
type Op struct {
	// Parent is the identity of the tree the step runs on ("" for COPY --link,
	// which runs on nothing).
	Parent   string `json:"parent"`
	Platform string `json:"platform"`

	Run     *RunOp     `json:"run"`
	Copy    *CopyOp    `json:"copy"`
	Workdir *WorkdirOp `json:"workdir"`
}

// RunOp is a RUN: the process, its environment and sandbox, and every mount.
type RunOp struct {
	Args     []string `json:"args"`
	Env      []string `json:"env"`
	User     string   `json:"user"`
	Workdir  string   `json:"workdir"`
	Network  string   `json:"network"`
	Security string   `json:"security"`
	// Limits are the sandbox's cgroup limits: a step can see them (pids.max,
	// memory.limit_in_bytes, nproc in a cpu-limited cgroup) and fail by them.
	Limits LimitsOp  `json:"limits"`
	Mounts []MountOp `json:"mounts"`
	// ExtraHosts are "name=ip", ShmSize bytes (0: the default), Ulimits
	// "resource=soft:hard": what --add-host, --shm-size and --ulimit give the
	// sandbox (absent from the encoding when not given, so other keys keep theirs).
	ExtraHosts []string `json:"extraHosts,omitempty"`
	ShmSize    int64    `json:"shmSize,omitempty"`
	Ulimits    []string `json:"ulimits,omitempty"`
	// Hostname is the step's hostname when the build sets one (BuildKit's
	// BUILDKIT_SANDBOX_HOSTNAME build arg); "" is exec.DefaultHostname.
	Hostname string `json:"hostname,omitempty"`
}

// LimitsOp is exec.Limits as key material (CPUs in thousandths: no floats in keys).
type LimitsOp struct {
	MemoryBytes int64 `json:"memoryBytes"`
	MilliCPUs   int64 `json:"milliCPUs"`
	Pids        int64 `json:"pids"`
}

// MountOp is one RUN --mount (or kiln's own mount of a heredoc script), with every
// option that changes what the step sees.
type MountOp struct {
	Type     string `json:"type"` // bind, cache, tmpfs, secret, ssh, heredoc
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly"`
	// Source is the path selected inside the mount's source (bind, cache from=).
	Source string `json:"source"`
	// Content is the digest of exactly what the mount shows or seeds from: the
	// selected files of the context, a stage or an image; a heredoc's text.
	Content string `json:"content"`
	// UID, GID and Mode are the options as given ("" when not given), in decimal,
	// decimal and octal.
	UID  string `json:"uid"`
	GID  string `json:"gid"`
	Mode string `json:"mode"`
	// Size is a tmpfs size limit in bytes (0: none).
	Size int64 `json:"size"`
	// ID and Env name a secret or an ssh agent (never its value), Required says a
	// missing one fails the step.
	ID       string `json:"id"`
	Env      string `json:"env"`
	Required bool   `json:"required"`
	// Given says a secret or an ssh agent was given for the mount (never what it
	// is): a step can act on its absence.
	Given bool `json:"given"`
}

// CopyOp is a COPY or ADD: what it selects, where it puts it and how.
type CopyOp struct {
	Add bool `json:"add"`
	// Sources are the source paths as expanded (patterns, URLs, git refs), in
	// order; Content has one digest per run of sources read from one place (see
	// copyPart), of exactly what that part selects.
	Sources  []string `json:"sources"`
	Content  []string `json:"content"`
	Dest     string   `json:"dest"`
	Chown    string   `json:"chown"`
	Chmod    string   `json:"chmod"` // source.Chmod.String: 755 and 0755 are one mode
	Link     bool     `json:"link"`
	Parents  bool     `json:"parents"`
	Excludes []string `json:"excludes"`
	// Unpack and KeepGitDir are ADD's tri-state flags: "" not given, else "true" or
	// "false".
	Unpack     string `json:"unpack"`
	KeepGitDir string `json:"keepGitDir"`
	Checksum   string `json:"checksum"`
}

// WorkdirOp is a WORKDIR that creates its directory, owned by the stage's user.
type WorkdirOp struct {
	Path string `json:"path"`
	User string `json:"user"`
}

// encode is the op's canonical encoding: JSON of plain structs and slices, whose
// field order is fixed and which has no maps, so one value has one encoding.
func (op *Op) encode() []byte {
	data, err := json.Marshal(op)
	if err != nil {
		panic(fmt.Sprintf("encode op: %v", err)) // plain strings, ints and bools always encode
	}
	return data
}

// key is the step's cache key: the digest of the versioned canonical encoding.
func (op *Op) key() string {
	h := sha256.New()
	h.Write([]byte(opKeyVersion))
	h.Write([]byte{0})
	h.Write(op.encode())
	return hex.EncodeToString(h.Sum(nil))
}

// explainOpChange names what differs between the op last built at a step's position
// and this one, in the words a user recognises; files describes how the files the
// two read differ.
func explainOpChange(old, cur *opRecord, files func() string) string {
	switch {
	case old.Op.Parent != cur.Op.Parent:
		return "a previous step changed"
	case old.Op.Platform != cur.Op.Platform:
		return "platform changed"
	}
	if o, c := old.Op.Run, cur.Op.Run; o != nil && c != nil && !reflect.DeepEqual(o.Env, c.Env) {
		return describeEnvChange(o.Env, c.Env)
	}
	if o, c := old.Op.Copy, cur.Op.Copy; o != nil && c != nil && !reflect.DeepEqual(o.Content, c.Content) &&
		reflect.DeepEqual(o.Sources, c.Sources) {
		return files()
	}
	if f := firstDifference(reflect.ValueOf(old.Op), reflect.ValueOf(cur.Op), ""); f != "" {
		return f + " changed"
	}
	return "the cache entry was removed"
}

// firstDifference walks two values of one type and returns the JSON path of the
// first field that differs ("run.mounts[1].uid"), "" when they are equal.
func firstDifference(a, b reflect.Value, at string) string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return orRoot(at)
			}
			return ""
		}
		return firstDifference(a.Elem(), b.Elem(), at)
	case reflect.Struct:
		for i := range a.NumField() {
			name, _, _ := strings.Cut(a.Type().Field(i).Tag.Get("json"), ",")
			p := name
			if at != "" {
				p = at + "." + name
			}
			if d := firstDifference(a.Field(i), b.Field(i), p); d != "" {
				return d
			}
		}
		return ""
	case reflect.Slice:
		if a.Len() != b.Len() {
			return orRoot(at)
		}
		for i := range a.Len() {
			if d := firstDifference(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", at, i)); d != "" {
				return d
			}
		}
		return ""
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		return orRoot(at)
	}
	return ""
}

func orRoot(at string) string {
	if at == "" {
		return "the step"
	}
	return at
}
