#!/usr/bin/env python3
"""CPU used by the processes that do not descend from a given process (the
bench script): the machine's other work during a measurement.

    cpu-others.py ROOT_PID OUT_FILE

samples /proc every 0.25 s until SIGTERM or SIGINT, then writes one line to
OUT_FILE: "<cores> <seconds> <top>", the others' CPU time (utime + stime,
the kernel's precise per-process figures) divided by the wall time, the
wall time, and the three commands that used most ("rustc:1.52,cc:0.20,...",
in cores). A process seen in two samples counts its CPU between them; one
first seen after the first sample counts all its CPU (it started in the
window); what a process used in its last 0.25 s before exiting is missed,
so the figure is a slight underestimate. /proc/stat's busy ticks are not
used: with tick accounting a bursty process (a server at a moderate rate)
is mostly idle when the tick fires, so the machine's total is undercounted
while a process's own figures are not.
"""
import os
import signal
import sys
import time

root, out = int(sys.argv[1]), sys.argv[2]
hz = os.sysconf("SC_CLK_TCK")
me = os.getpid()
stop = False


def on_signal(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)


def sample():
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                s = f.read()
        except OSError:
            continue
        # comm is in parentheses and may hold spaces.
        comm = s[s.index("(") + 1 : s.rindex(")")]
        fields = s[s.rindex(")") + 2 :].split()
        ppid, ticks, start = int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19])
        procs[int(name)] = (ppid, ticks, comm, start)
    return procs


def ours(pid, procs):
    seen = 0
    while pid > 1 and seen < 64:
        if pid in (root, me):
            return True
        p = procs.get(pid)
        if p is None:
            return False
        pid, seen = p[0], seen + 1
    return False


t0 = time.monotonic()
prev = sample()
used = {}
while not stop:
    time.sleep(0.25)
    cur = sample()
    for pid, (ppid, ticks, comm, start) in cur.items():
        if ours(pid, cur):
            continue
        before = prev.get(pid)
        if before is not None and before[3] == start:
            d = ticks - before[1]
        else:
            d = ticks  # started since the last sample
        if d > 0:
            used[comm] = used.get(comm, 0) + d
    prev = cur
wall = time.monotonic() - t0
total = sum(used.values()) / hz
top = ",".join(
    "%s:%.2f" % (c, t / hz / wall) for c, t in sorted(used.items(), key=lambda kv: -kv[1])[:3]
) or "-"
with open(out, "w") as f:
    f.write("%.2f %.1f %s\n" % (total / wall, wall, top))
