package exec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// passwdEntry and groupEntry are the fields of /etc/passwd and /etc/group a RUN
// step's identity needs.
type passwdEntry struct {
	name     string
	uid, gid int
	home     string
}

type groupEntry struct {
	name    string
	gid     int
	members []string
}

// idArg is one side of a USER value: a name, or a number that is never looked up
// as a name (runc's rule: USER 1000 means uid 1000 even if a user is named "1000").
type idArg struct {
	name    string
	id      int
	numeric bool
}

func parseIDArg(s string) (*idArg, error) {
	if s == "" {
		return nil, nil
	}
	id, err := strconv.Atoi(s)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("%s: uids and gids must be in range 0-%d", s, math.MaxInt32)
		}
		return &idArg{name: s}, nil
	}
	if id < 0 || id > math.MaxInt32 {
		return nil, fmt.Errorf("%s: uids and gids must be in range 0-%d", s, math.MaxInt32)
	}
	return &idArg{name: s, id: id, numeric: true}, nil
}

func resolveUser(rootfs, spec string) (User, error) {
	passwd, err := readPasswd(rootfs)
	if err != nil {
		return User{}, fmt.Errorf("resolve user %q: %w", spec, err)
	}
	group, err := readGroup(rootfs)
	if err != nil {
		return User{}, fmt.Errorf("resolve user %q: %w", spec, err)
	}
	return lookupUser(spec, passwd, group)
}

// lookupUser follows github.com/moby/sys/user GetExecUser with runc's defaults
// (uid 0, gid 0, home "/"). passwd or group is nil when the file does not exist.
func lookupUser(spec string, passwd []passwdEntry, group []groupEntry) (User, error) {
	u := User{Home: "/"}
	usr, grp, _ := strings.Cut(spec, ":")
	userArg, err := parseIDArg(usr)
	if err != nil {
		return User{}, err
	}
	groupArg, err := parseIDArg(grp)
	if err != nil {
		return User{}, err
	}

	matched := ""
	found := false
	for _, p := range passwd {
		ok := false
		switch {
		case userArg == nil:
			ok = p.uid == 0
		case userArg.numeric:
			ok = p.uid == userArg.id
		default:
			ok = p.name == userArg.name
		}
		if ok {
			found = true
			matched = p.name
			u.UID, u.GID, u.Home = uint32(p.uid), uint32(p.gid), p.home
			break
		}
	}
	if !found && userArg != nil {
		if !userArg.numeric {
			return User{}, fmt.Errorf("unable to find user %s: no matching entries in passwd file", userArg.name)
		}
		u.UID = uint32(userArg.id)
	}

	if groupArg != nil {
		for _, g := range group {
			if (groupArg.numeric && g.gid == groupArg.id) || (!groupArg.numeric && g.name == groupArg.name) {
				u.GID = uint32(g.gid)
				return u, nil
			}
		}
		if !groupArg.numeric {
			return User{}, fmt.Errorf("unable to find group %s: no matching entries in group file", groupArg.name)
		}
		u.GID = uint32(groupArg.id)
		return u, nil
	}
	// Supplementary groups only exist in the implicit form, for a user found by name
	// or uid in passwd.
	if matched != "" {
		for _, g := range group {
			for _, m := range g.members {
				if m == matched {
					u.AdditionalGIDs = append(u.AdditionalGIDs, uint32(g.gid))
					break
				}
			}
		}
	}
	return u, nil
}

// readUserFile reads name inside rootfs, resolving symlinks as if rootfs were "/"
// (an image's /etc/passwd may be an absolute link), as runc does. A missing file is
// nil, not an error, as GetExecUserPath ignores files it cannot open. The rootfs is
// not running anything while kiln reads it, so the join cannot be raced.
func readUserFile(rootfs, name string) ([]byte, error) {
	p, err := securejoin.SecureJoin(rootfs, name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

func readPasswd(rootfs string) ([]passwdEntry, error) {
	b, err := readUserFile(rootfs, "/etc/passwd")
	if b == nil || err != nil {
		return nil, err
	}
	var out []passwdEntry
	err = eachLine(bytes.NewReader(b), func(f []string) {
		// name:password:uid:gid:gecos:home:shell
		e := passwdEntry{name: field(f, 0), uid: atoi(field(f, 2)), gid: atoi(field(f, 3)), home: field(f, 5)}
		out = append(out, e)
	})
	return out, err
}

func readGroup(rootfs string) ([]groupEntry, error) {
	b, err := readUserFile(rootfs, "/etc/group")
	if b == nil || err != nil {
		return nil, err
	}
	var out []groupEntry
	err = eachLine(bytes.NewReader(b), func(f []string) {
		// name:password:gid:member,member
		e := groupEntry{name: field(f, 0), gid: atoi(field(f, 2))}
		if m := field(f, 3); m != "" {
			e.members = strings.Split(m, ",")
		}
		out = append(out, e)
	})
	return out, err
}

// eachLine calls fn with the colon-separated fields of each line, skipping blank
// lines and comments as glibc does.
func eachLine(r io.Reader, fn func([]string)) error {
	s := bufio.NewScanner(r)
	s.Buffer(nil, 1<<20) // a group's member list may be long
	for s.Scan() {
		line := bytes.TrimSpace(s.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		fn(strings.Split(string(line), ":"))
	}
	return s.Err()
}

func field(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}

// atoi is lenient like the passwd parsers: a malformed id reads as 0.
func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// resolveFileOwner follows BuildKit's readUser for file operations (COPY --chown,
// the directory WORKDIR creates): a number, or "root", is taken as is and, for the
// user part, as the gid too; a user name gives its passwd uid and primary gid; a
// group name its gid. A name the files lack (or a missing file) leaves 0 for a user
// and the user's gid for a group, and is reported as ErrNotInImage; a missing file
// also as ErrNoIDFile.
func resolveFileOwner(rootfs, spec string) (FileOwner, error) {
	usr, grp, _ := strings.Cut(spec, ":")
	var o FileOwner
	var missing []string
	noFile := false
	exists := func(name string) bool {
		b, err := readUserFile(rootfs, name)
		return b != nil || err != nil
	}
	u, err := fileOwnerArg(usr)
	if err != nil {
		return FileOwner{}, err
	}
	switch {
	case u == nil:
	case u.numeric:
		o.UID, o.GID = u.id, u.id
	default:
		passwd, err := readPasswd(rootfs)
		if err != nil {
			return FileOwner{}, fmt.Errorf("resolve owner %q: %w", spec, err)
		}
		i := slices.IndexFunc(passwd, func(p passwdEntry) bool { return p.name == u.name })
		if i < 0 {
			missing = append(missing, "user "+u.name)
			noFile = noFile || (passwd == nil && !exists("/etc/passwd"))
		} else {
			o.UID, o.GID = passwd[i].uid, passwd[i].gid
		}
	}
	g, err := fileOwnerArg(grp)
	if err != nil {
		return FileOwner{}, err
	}
	switch {
	case g == nil:
	case g.numeric:
		o.GID = g.id
	default:
		group, err := readGroup(rootfs)
		if err != nil {
			return FileOwner{}, fmt.Errorf("resolve owner %q: %w", spec, err)
		}
		i := slices.IndexFunc(group, func(e groupEntry) bool { return e.name == g.name })
		if i < 0 {
			missing = append(missing, "group "+g.name)
			noFile = noFile || (group == nil && !exists("/etc/group"))
		} else {
			o.GID = group[i].gid
		}
	}
	if noFile {
		return o, fmt.Errorf("unable to find %s: %w: %w", strings.Join(missing, " and "), ErrNotInImage, ErrNoIDFile)
	}
	if len(missing) > 0 {
		return o, fmt.Errorf("unable to find %s: %w", strings.Join(missing, " and "), ErrNotInImage)
	}
	return o, nil
}

// fileOwnerArg is parseIDArg with BuildKit's one special name: "root" is 0 without
// a lookup (llb.WithUser's parseUID).
func fileOwnerArg(s string) (*idArg, error) {
	if s == "root" {
		return &idArg{name: s, numeric: true}, nil
	}
	return parseIDArg(s)
}
