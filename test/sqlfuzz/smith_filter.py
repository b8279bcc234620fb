"""Filter sqlsmith's generated queries (--dry-run, on stdin) on their way to
psql (stdout): drop the shapes that reach PostgreSQL's own internal errors in
its parser, whatever the functions called (calls.py, CORE_XX000: a COALESCE,
CASE or select-list column of the pseudo-type unknown fails in coerce_type
with XX000 'failed to find conversion function from unknown to text', with or
without pg_courier), so that the server log of the run holds no XX000 at all.
Everything else goes through unchanged, one query at a time, each also
appended to the file named by argv[1] (for the summary and for reproducing a
failure); argv[2] gets the dropped ones."""
import re
import sys

# a cast to unknown, or a function taking or returning it (unknownin,
# unknownout, unknownrecv, unknownsend): an unknown-typed value in a
# COALESCE/CASE or in the select list fails the same way
UNKNOWN = re.compile(r"\bas\s+\"?unknown\"?\s*\)|\bunknown(in|out|recv|send)\s*\(", re.I)

kept = open(sys.argv[1], "w")
dropped = open(sys.argv[2], "w")
out = sys.stdout
out.write("SET statement_timeout = '1s';\n")
buf = []
try:
    for line in sys.stdin:
        buf.append(line)
        if not line.rstrip().endswith(";"):
            continue
        q = "".join(buf)
        buf = []
        if UNKNOWN.search(q):
            dropped.write(q)
            continue
        kept.write(q)
        out.write(q)
        out.flush()
except (BrokenPipeError, KeyboardInterrupt):
    pass
finally:
    kept.close()
    dropped.close()
