"""Commands other packages add to ``legc``, found through the ``keras_legc.cli_commands`` entry-point
group (the research harness registers ``demo`` and ``reproduce`` there) and imported only when
``legc`` needs one: to run it, or to list it in ``legc --help``.

A package adds a command with, in its setup.cfg::

    [options.entry_points]
    keras_legc.cli_commands =
        demo = legc_research.cli:demo

The entry point's name is the command's name and must point at a ``click.Command``. A command that
cannot be loaded (its package broken or half installed) is left out with one warning on stderr
naming it and the fix; it never stops ``legc`` or its other commands. The library's own commands
win over a plugin of the same name.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import click

#: The entry-point group a package registers ``legc`` commands in.
GROUP = "keras_legc.cli_commands"


def plugin_entry_points() -> dict[str, EntryPoint]:
    """Command name -> entry point, over every installed distribution (the first one of a name)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep)
    return found


def load_plugin(ep: EntryPoint) -> click.Command | None:
    """The command an entry point names, or None after a warning saying why it is left out."""
    source = f"{ep.value} (from {_distribution(ep)})"
    try:
        command = ep.load()
    except Exception as exc:  # noqa: BLE001  (any failure of someone else's import: warn, go on)
        problem = f"importing it failed with {type(exc).__name__}: {exc}"
    else:
        if isinstance(command, click.Command):
            return command
        problem = f"it is a {type(command).__name__}, not a click command"
    click.echo(
        f"warning: legc: command {ep.name!r} left out: {source}: {problem}. Fix: reinstall the "
        f"package that provides it (for demo and reproduce: pip install 'keras-legc[research]').",
        err=True,
    )
    return None


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


class PluginGroup(click.Group):
    """A click group whose commands are its own plus the plugins of :data:`GROUP`, loaded lazily."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._plugins: dict[str, click.Command | None] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(plugin_entry_points()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        if cmd_name not in self._plugins:
            ep = plugin_entry_points().get(cmd_name)
            self._plugins[cmd_name] = load_plugin(ep) if ep is not None else None
        return self._plugins[cmd_name]
