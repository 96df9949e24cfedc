"""``python -m dfig.weights``: the table of official files (:func:`dfig.weights.cli.main`);
``python -m dfig.weights standin ...`` writes stand-ins (:func:`dfig.standin.main`, also
``python -m dfig.standin``). The command sits above both, so ``dfig.weights`` never imports the writer."""

import sys

from dfig.weights.cli import main as table


def main(argv: list[str] | None = None) -> int:
    """``standin ...`` -> :func:`dfig.standin.main`; anything else -> the table of official files."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["standin"]:
        from dfig.standin import main as standin

        return standin(argv[1:])
    return table(argv)


if __name__ == "__main__":
    sys.exit(main())
