"""Readers of the files the benchmark scripts leave in bench/out/ (imported by
the parsers embedded in bench/cpu.sh and bench/sim.sh)."""

import json


def read_json(path):
    """The whole file as one JSON value (snn-sim --json pretty-prints), else its last JSON line."""
    try:
        text = open(path).read()
    except OSError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        lines = [l for l in text.splitlines() if l.strip().startswith("{")]
        try:
            return json.loads(lines[-1]) if lines else None
        except ValueError:
            return None


def wall(path):
    """The seconds between the two times (start, end) a .wall file holds."""
    try:
        t0, t1 = map(float, open(path).read().split())
        return t1 - t0
    except (OSError, ValueError):
        return None


def error_line(path):
    """The error of a failed step: the last line that says 'error', else the last line."""
    try:
        lines = [l.strip() for l in open(path).read().splitlines() if l.strip()]
    except OSError:
        return None
    errs = [l for l in lines if "error" in l.lower()]
    line = (errs or lines or [None])[-1]
    return None if line is None else line.replace("|", "/")[:160]
