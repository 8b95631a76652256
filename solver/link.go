package solver

// A linked copy (CopyInputs.Link, COPY/ADD --link): as in BuildKit (a copy onto llb.Scratch merged on
// top of the stage), the files are copied into an EMPTY snapshot, so the layer's diff
// does not depend on the stage below it, and neither does the step's cache key
// (op.Parent stays empty): rebuilding on a changed base reuses the layer as it is,
// with the same digest. The layer is then stacked on the stage's layers.
//
// What follows from copying into nothing, as the Dockerfile reference says: the copy
// cannot read the stage, so a destination below a symlink in the stage is not
// followed (the layer brings real directories, which replace the link when stacked),
// directories the copy creates on the way are 0755 root and replace the stage's
// metadata of those directories, and --chown takes numbers only (checked by
// the front end; there is no /etc/passwd in an empty snapshot).
//
// The engine runs it as any step (stepExec.linked): Parent is left empty and the
// state's key after it is digestOf("link", parent key, op key).
