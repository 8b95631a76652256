package exec

import (
	"fmt"
	"strings"
)

// Error says how the command ended, in the words BuildKit uses ("exit code: 1"), with
// the cause when the cgroup knows it.
func (e *ExitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exit code: %d", e.Code)
	if e.Signal != 0 {
		fmt.Fprintf(&b, " (killed by signal %s)", e.Signal)
	}
	if e.OOMKilled {
		if e.MemoryLimit > 0 {
			fmt.Fprintf(&b, "; a process was killed for exceeding the memory limit of %d MiB", e.MemoryLimit>>20)
		} else {
			b.WriteString("; a process was killed because memory ran out")
		}
	}
	if e.PidsLimited {
		b.WriteString("; the step reached its limit on the number of processes")
	}
	return b.String()
}
