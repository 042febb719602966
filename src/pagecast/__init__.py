"""Pagecast: Facebook Messenger campaigns for Facebook Pages."""

import sys

__version__ = "0.1.0"

# httpx imports its own command-line client at import time when click, rich and pygments are
# installed (they are: Pagecast's CLI uses them), which costs every process about 5 MB of
# memory for a tool Pagecast never runs. A None entry makes that one import fail, and httpx
# then goes without it. Nothing else changes: `rich` and `click` stay importable.
# (typeshed types sys.modules' values as modules only; None is Python's documented way to
# make an import fail.)
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
