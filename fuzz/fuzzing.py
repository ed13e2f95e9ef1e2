"""The runner shared by the fuzz scripts: pick an entry point, seed its corpus, start atheris.

`python fuzz/fuzz_X.py TARGET [libFuzzer flags] [CORPUS_DIR ...]`. Without a corpus directory
the working corpus is `fuzz/corpus/TARGET/` (git-ignored): the seeds are written there first,
and libFuzzer adds what it finds. A crash is written as `crash-<sha1>` in the current directory
(`-artifact_prefix=` to change); rerun one input with `python fuzz/fuzz_X.py TARGET FILE`.

atheris is imported only here, inside `main`, so the entry points can be imported and run over
their seeds by pytest without it (tests/unit/fuzz/test_fuzz_seeds.py).
"""

from __future__ import annotations

import gc
import hashlib
import sys
import types
from collections.abc import Callable, Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def write_seeds(folder: Path, seeds: Iterable[bytes]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for seed in seeds:
        path = folder / f"seed-{hashlib.sha1(seed).hexdigest()}"
        if not path.exists():
            path.write_bytes(seed)
        count += 1
    return count


def instrument(atheris, prefixes: tuple[str, ...]) -> int:
    """Instrument the loaded functions of the modules under `prefixes` (atheris's
    instrument_all takes minutes on everything numpy, SQLAlchemy ... bring in)."""
    count = 0
    for obj in gc.get_objects():
        if not isinstance(obj, types.FunctionType):
            continue
        module = getattr(obj, "__module__", None) or ""
        if module.split(".")[0] in prefixes and module in sys.modules:
            try:
                atheris.instrument_func(obj)
                count += 1
            except Exception:  # noqa: BLE001 - a function atheris cannot patch stays as it is
                pass
    return count


def main(targets: dict[str, Callable[[bytes], None]], seeds: Callable[[str], list[bytes]],
         instrumented: tuple[str, ...]) -> None:
    """`instrumented`: top-level packages whose code gets coverage feedback."""
    args = sys.argv[1:]
    if not args or args[0] not in targets:
        names = " | ".join(targets)
        sys.exit(f"usage: {Path(sys.argv[0]).name} {{{names}}} [-atheris_runs=N] "
                 "[libFuzzer flags] [CORPUS_DIR|FILE ...]")
    name, rest = args[0], args[1:]
    corpus_seeds = seeds(name)
    for seed in corpus_seeds:  # loads what the target imports lazily (Pillow plugins ...)
        targets[name](seed)
    if not any(not a.startswith("-") for a in rest):  # no corpus given: ours, seeded
        corpus = HERE / "corpus" / name
        count = write_seeds(corpus, corpus_seeds)
        print(f"fuzz: {name}: {count} seeds in {corpus}", file=sys.stderr)
        rest.append(str(corpus))

    import atheris  # only when fuzzing: `pip install -e '.[fuzz]'`

    count = instrument(atheris, instrumented)
    print(f"fuzz: {name}: {count} functions of {', '.join(instrumented)} instrumented",
          file=sys.stderr)
    atheris.Setup([sys.argv[0], *rest], targets[name])
    atheris.Fuzz()
