#!/usr/bin/env bash
# Writes deploy/seccomp/datamiddleware.json: podman's default seccomp profile
# (containers-common's /usr/share/containers/seccomp.json, the same rules as
# docker's default) plus one rule allowing exactly io_uring_setup,
# io_uring_enter and io_uring_register, which glommio needs and the default
# profiles of podman, docker (moby/moby#46762) and containerd 2.0 block.
# Nothing else changes: the rule is appended, every other entry is kept as is.
# Usage: deploy/seccomp/generate.sh [SOURCE] [--check]
#   SOURCE   the default profile to start from (/usr/share/containers/seccomp.json;
#            `apt-get install podman` or containers-common installs it)
#   --check  compares instead of writing: exit 1 when the committed file is
#            not SOURCE plus the rule (e.g. after a podman upgrade changed it).
set -euo pipefail
cd "$(dirname "$0")"

SOURCE=/usr/share/containers/seccomp.json
CHECK=0
for arg in "$@"; do
  case "$arg" in
    --check) CHECK=1 ;;
    *) SOURCE=$arg ;;
  esac
done
[ -r "$SOURCE" ] || { echo "no default profile at $SOURCE (apt-get install podman)" >&2; exit 1; }

python3 - "$SOURCE" datamiddleware.json "$CHECK" <<'PY'
import json, sys

source, target, check = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
RULE = {
    "names": ["io_uring_enter", "io_uring_register", "io_uring_setup"],
    "action": "SCMP_ACT_ALLOW",
    "args": [],
    "comment": "DataMiddleware: glommio's io_uring (deploy/seccomp/generate.sh)",
    "includes": {},
    "excludes": {},
}
with open(source) as f:
    profile = json.load(f)
if any(n.startswith("io_uring") for s in profile["syscalls"] for n in s["names"]):
    sys.exit(f"{source} already names io_uring calls; look at it before adding a rule")
profile["syscalls"].append(RULE)
text = json.dumps(profile, indent=2) + "\n"
if check:
    with open(target) as f:
        if json.load(f) != profile:
            sys.exit(f"{target} is not {source} plus the io_uring rule: run deploy/seccomp/generate.sh")
    print(f"{target} = {source} + the io_uring rule")
else:
    with open(target, "w") as f:
        f.write(text)
    print(f"wrote {target}: {source} + io_uring_setup, io_uring_enter, io_uring_register")
PY
