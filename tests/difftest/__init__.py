"""Differential harness: the same job through fio (the oracle) and iolab, compared field by field.

Cases come from two sources: jobs generated from the option table (:mod:`.gen`) and the job files of
Debian's fio-examples package, shrunk to small temp files (:mod:`.examples`).  Each case runs in two
fresh directories (:mod:`.run`); :mod:`.compare` classifies it as agree, disagree, refused or internal
error; :mod:`.allow` reads the known differences from docs/fio-differences.md.

Run ``python -m tests.difftest --help`` from the repository root.
"""
