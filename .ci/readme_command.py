"""Print one of the README's two Quickstart commands ("serve" or "test"), so CI runs exactly it."""

import re
import sys
from pathlib import Path

text = Path(__file__).resolve().parent.parent.joinpath("README.md").read_text()
section = re.search(r"^#+\s*Quickstart.*?$(.*?)(?=^#+\s|\Z)", text, re.S | re.M | re.I).group(1)
commands = [
    line.strip()
    for block in re.findall(r"```[a-z]*\n(.*?)```", section, re.S)
    for line in block.splitlines()
    if line.strip() and not line.strip().startswith("#")
]
assert len(commands) == 2, f"the Quickstart must hold exactly two commands, found {commands}"
print(commands[{"serve": 0, "test": 1}[sys.argv[1]]])
