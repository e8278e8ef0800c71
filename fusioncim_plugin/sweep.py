"""Placeholder; filled in by its feature work."""


def register(subparsers) -> None:
    pass
