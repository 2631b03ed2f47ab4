"""Registries of methods (losses), estimators of T and data sets: pyrobust's extension points.

In the manner of ``timm``'s model registry: every method, estimator and data set is an entry found by
its name, and a researcher adds one from their own code or package without editing pyrobust::

    import pyrobust

    pyrobust.register_method("my_loss", "my_package.losses:MyLoss", label="my loss")
    pyrobust.get_method("my_loss").make_loss()            # MyLoss(reduction="mean")

or, with nothing to call at import, through a Python entry point in one of the groups
``pyrobust.methods``, ``pyrobust.estimators``, ``pyrobust.datasets``::

    # the plug-in's pyproject.toml
    [project.entry-points."pyrobust.methods"]
    my_loss = "my_package.plugin:MY_LOSS"                 # a pyrobust.registry.Method named "my_loss"

An entry point is loaded the first time its name is looked up (or every entry is listed). It must load
either an entry (:class:`Method`, :class:`Estimator`, :class:`DatasetInfo`) of the same name, or a module
whose import registers that name.

Importing this module imports neither torch nor any plug-in: code is referenced as ``"module:attribute"``
strings, resolved on first use, so ``pyrobust --help`` and Snakemake's parsing of the workflow stay fast.
The built-in entries are declared in :mod:`pyrobust.catalog`.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from pyrobust.entries import DatasetInfo, Estimator, Method, Ref, Remote, resolve

__all__ = [
    "DatasetInfo",
    "Estimator",
    "Method",
    "Registry",
    "Remote",
    "get_dataset",
    "get_estimator",
    "get_method",
    "list_datasets",
    "list_estimators",
    "list_methods",
    "register_dataset",
    "register_estimator",
    "register_method",
    "resolve",
]

class DeclarationError(ValueError):
    """An entry declared outside code (``PYROBUST_CUSTOM_DATASETS``) is invalid or its file unreadable."""


Entry = TypeVar("Entry", Method, Estimator, DatasetInfo)


class Registry(Generic[Entry]):
    """Entries of one kind by name: those registered, then those of the entry-point ``group``."""

    def __init__(self, kind: str, entry_type: type[Entry], group: str,
                 declared: Callable[[], Mapping[str, Callable[[], Entry]]] | None = None) -> None:
        self.kind, self.entry_type, self.group = kind, entry_type, group
        #: entries declared outside code (name -> factory), read on a lookup miss like the entry points:
        #: for data sets, :func:`pyrobust.custom_datasets.declared_entries` (``PYROBUST_CUSTOM_DATASETS``)
        self._declared = declared or (lambda: {})
        self._entries: dict[str, Entry] = {}
        self._failed: dict[str, str] = {}

    def register(self, entry: Entry, *, replace: bool = False) -> Entry:
        """Add ``entry``; a name already taken raises ``ValueError`` unless ``replace=True``."""
        if not isinstance(entry, self.entry_type):
            raise TypeError(f"register a {self.entry_type.__name__}, got {type(entry).__name__}")
        _builtins()
        if entry.name in self._entries and not replace and self._entries[entry.name] != entry:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered (pass replace=True to replace it)")
        self._entries[entry.name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and interactive sessions); an unknown name is ignored."""
        self._entries.pop(name, None)

    def _entry_points(self) -> dict[str, Any]:
        from importlib import metadata  # scans every installed distribution: only when a plug-in is wanted

        return {ep.name: ep for ep in metadata.entry_points(group=self.group)}

    def _load_entry_point(self, ep: Any) -> None:
        try:
            obj = ep.load()
            if isinstance(obj, self.entry_type):
                if obj.name != ep.name:
                    raise ValueError(f"entry point {ep.name!r} loads a {self.kind} named {obj.name!r}")
                self.register(obj)
            elif ep.name not in self._entries:
                raise ValueError(
                    f"it loads a {type(obj).__name__}, neither a pyrobust.registry.{self.entry_type.__name__} "
                    f"nor a module that registers {ep.name!r}"
                )
        except Exception as error:  # a broken plug-in must not break every other name
            self._failed[ep.name] = f"entry point {ep.value!r} of group {self.group!r} failed: {error!r}"
            warnings.warn(f"pyrobust: {self.kind} {ep.name!r}: {self._failed[ep.name]}", RuntimeWarning,
                          stacklevel=3)

    def get(self, name: str) -> Entry:
        """The entry ``name``, loading its entry point if it has one.

        Raises:
            ValueError: no such name (the message lists the known names), or its plug-in failed to load.
        """
        _builtins()
        if name not in self._entries and isinstance(name, str):
            factory = self._declared().get(name)
            if factory is not None:
                try:
                    self.register(factory(), replace=True)
                except Exception as error:  # a broken declaration is an error of the config: say so, loudly
                    raise DeclarationError(f"{self.kind} {name!r}, declared in PYROBUST_CUSTOM_DATASETS: "
                                           f"{error}") from error
        if name not in self._entries and isinstance(name, str) and name not in self._failed:
            ep = self._entry_points().get(name)
            if ep is not None:
                self._load_entry_point(ep)
        if name in self._entries:
            return self._entries[name]
        if name in self._failed:
            raise ValueError(f"{self.kind} {name!r} could not be loaded: {self._failed[name]}")
        raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")

    def names(self, *, plugins: bool = True) -> list[str]:
        """Every name, registered first (in registration order), then those of entry points not yet loaded
        (by name, without importing them) unless ``plugins=False``."""
        _builtins()
        return list(dict.fromkeys([*self._entries, *self._declared(), *(self._entry_points() if plugins else ())]))

    def entries(self) -> list[Entry]:
        """Every entry, loading every entry point (a broken one is warned about and left out)."""
        out = []
        for name in self.names():
            try:
                out.append(self.get(name))
            except DeclarationError:
                raise
            except ValueError:
                continue
        return out

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


METHODS: Registry[Method] = Registry("method", Method, "pyrobust.methods")
ESTIMATORS: Registry[Estimator] = Registry("estimator", Estimator, "pyrobust.estimators")
DATASETS: Registry[DatasetInfo] = Registry("data set", DatasetInfo, "pyrobust.datasets", declared=lambda: _declared_datasets())


def _declared_datasets() -> Mapping[str, Any]:
    """The data sets declared in ``PYROBUST_CUSTOM_DATASETS`` (:mod:`pyrobust.custom_datasets`)."""
    from pyrobust.custom_datasets import declared_entries

    return declared_entries()

_BUILTINS_LOADED = False


def _builtins() -> None:
    """Register the built-in entries (:mod:`pyrobust.catalog`) once, on first use of any registry."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        importlib.import_module("pyrobust.catalog")


def register_method(name: str, loss: Ref, *, replace: bool = False, **info: Any) -> Method:
    """Register a training method: ``loss`` and the fields of :class:`Method` (label, transition, ...).

    Raises:
        ValueError: the name is taken (unless ``replace=True``) or a field is invalid.
    """
    return METHODS.register(Method(name, loss, **info), replace=replace)


def register_estimator(name: str, function: Ref, *, replace: bool = False, **info: Any) -> Estimator:
    """Register an estimator of T: ``function`` and the fields of :class:`Estimator`.

    Raises:
        ValueError: the name is taken (unless ``replace=True``).
    """
    return ESTIMATORS.register(Estimator(name, function, **info), replace=replace)


def register_dataset(name: str, loader: Ref, *, replace: bool = False, **info: Any) -> DatasetInfo:
    """Register a data set: ``loader`` and the fields of :class:`DatasetInfo` (num_classes, label, ...).

    Raises:
        ValueError: the name is taken (unless ``replace=True``) or a field is invalid.
    """
    return DATASETS.register(DatasetInfo(name, loader, **info), replace=replace)


def get_method(name: str) -> Method:
    """The :class:`Method` called ``name``. Raises ``ValueError`` listing the known names."""
    return METHODS.get(name)


def get_estimator(name: str) -> Estimator:
    """The :class:`Estimator` called ``name``. Raises ``ValueError`` listing the known names."""
    return ESTIMATORS.get(name)


def get_dataset(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` called ``name``. Raises ``ValueError`` listing the known names."""
    return DATASETS.get(name)


def list_methods() -> list[str]:
    """Names of every method: built-in (in Table 2's row order), registered, then entry points."""
    return METHODS.names()


def list_estimators() -> list[str]:
    """Names of every estimator of T."""
    return ESTIMATORS.names()


def list_datasets() -> list[str]:
    """Names of every data set."""
    return DATASETS.names()
