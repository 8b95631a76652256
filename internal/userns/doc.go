// Package userns puts rootless kiln in a user namespace of its own, where it is root.
//
// Enter, first in main, re-executes kiln in new user and mount namespaces when it
// is started by an ordinary user: uid and gid 0 map to the user and 1..N to the
// user's subordinate ranges from /etc/subuid and /etc/subgid, written by the setuid
// helpers newuidmap and newgidmap (Debian's uidmap), or, when the user has no
// ranges or the helpers are missing, to the user alone (then owners of other ids in
// bases and COPY --chown are recorded in an xattr, see internal/xattr.Lchown, and a
// step that needs another id fails with Explain's hint: usermod --add-subuids). Inside an
// unprivileged container kiln may be uid 0 without CAP_SYS_ADMIN; Enter then nests a
// user namespace that maps the container's ids onto themselves, so kiln gains the
// capabilities it needs over its own namespaces and mounts only. Writing that map
// takes CAP_SETUID and CAP_SETGID, and any map holding uid 0 takes CAP_SETFCAP (Linux
// >= 5.12): without SETUID/SETGID kiln maps uid 0 alone, without SETFCAP it cannot
// make a namespace at all and says which capabilities to add.
//
// Owners in layers are ids as seen inside the namespace (0..N), never host ids, so
// images are the same as root builds.
//
// Not supported: maps assembled from several subordinate ranges beyond what
// newuidmap accepts (every range of the user is passed, in file order), and
// /etc/subuid entries served by NSS (libsubid) rather than the file.
package userns
