"""Pure renderers of a plan or an apply result: text (terminal), markdown (PR comments) and JSON."""
