"""Each template compiled once per process, not once per app (Jinja's bytecode cache, in memory).

Production makes one app per process and gains nothing; a process that makes many apps (the
test suite makes one per test, about 85 ms of compiling each) compiles a template once.
"""

from __future__ import annotations

from typing import Any

from jinja2.bccache import Bucket, BytecodeCache


class CompiledTemplates(BytecodeCache):
    """Kept by the template's name and the checksum of its source: a changed file is compiled again."""

    def __init__(self) -> None:
        self._code: dict[str, tuple[str, Any]] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        kept = self._code.get(bucket.key)
        if kept is not None and kept[0] == bucket.checksum:
            bucket.code = kept[1]

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = (bucket.checksum, bucket.code)


KEPT = CompiledTemplates()
