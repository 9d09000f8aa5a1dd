"""Validated configuration dataclasses.

Every method and attack declares its configuration as a dataclass deriving from
:class:`Config`.  Validation runs in ``__post_init__``, so a bad value fails the moment
a config is built -- long before any Ray work starts -- with an error that names the
field, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Dict, Iterable, Mapping, Type, TypeVar

C = TypeVar("C", bound="Config")


class ConfigError(ValueError):
    """A configuration value is not allowed.  Names the field, the value and the rule."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"invalid {field}={value!r}: expected {allowed}")


# --- field checks -------------------------------------------------------------------------

def check_choice(field: str, value: Any, choices: Iterable[Any]) -> None:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(field, value, f"one of {choices}")


def check_number(field: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False) -> None:
    """Check that ``value`` is a finite number inside the given (closed by default) range."""
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        raise ConfigError(field, value, _range_text(kind, low, high, low_open, high_open))
    if low is not None and (value < low or (low_open and value == low)):
        raise ConfigError(field, value, _range_text(kind, low, high, low_open, high_open))
    if high is not None and (value > high or (high_open and value == high)):
        raise ConfigError(field, value, _range_text(kind, low, high, low_open, high_open))


def _range_text(kind: str, low, high, low_open, high_open) -> str:
    if low is None and high is None:
        return kind
    if high is None:
        return f"{kind} {'>' if low_open else '>='} {low}"
    if low is None:
        return f"{kind} {'<' if high_open else '<='} {high}"
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    return f"{kind} in {left}{low}, {high}{right}"


def check_rate(field: str, value: Any) -> None:
    check_number(field, value, low=0.0, high=1.0)


def check_positive_int(field: str, value: Any) -> None:
    check_number(field, value, low=1, integer=True)


def check_positive(field: str, value: Any) -> None:
    check_number(field, value, low=0.0, low_open=True)


def check_non_negative(field: str, value: Any) -> None:
    check_number(field, value, low=0.0)


# --- hashing: fields added after runs and artifacts exist ---------------------------------

KEYED_WHEN_SET = "keyed_when_set"


def keyed_when_set(default: Any) -> Any:
    """A config field left out of the config's hashes while it holds ``default`` (which must keep
    the behaviour the config had before the field existed)."""
    return dataclasses.field(default=default, metadata={KEYED_WHEN_SET: True})


def _plain(value: Any) -> Any:
    """``dataclasses.asdict``'s copy of a field value (containers copied, nested dataclasses as dicts)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


# --- the base class -----------------------------------------------------------------------

@dataclasses.dataclass
class Config:
    """Base for validated configs: dict round trip, flat columns, stable hashing."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:  # overridden by subclasses
        pass

    @classmethod
    def from_dict(cls: Type[C], data: Mapping[str, Any] | None = None, **overrides: Any) -> C:
        """Build from a (possibly nested) dict; unknown keys are an error, not ignored."""
        data = dict(data or {})
        data.update(overrides)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"{cls.__name__}.{unknown[0]}", data[unknown[0]],
                              f"a field of {cls.__name__}: {sorted(fields)}")
        kwargs = {}
        for name, value in data.items():
            sub = _config_type(fields[name])
            if sub is not None and isinstance(value, Mapping):
                value = sub.from_dict(value)
            elif isinstance(value, list) and isinstance(fields[name].default, tuple):
                value = tuple(value)
            kwargs[name] = value
        return cls(**kwargs)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed; dotted names reach into nested configs."""
        nested: Dict[str, Dict[str, Any]] = {}
        flat: Dict[str, Any] = {}
        for key, value in changes.items():
            head, _, rest = key.partition(".")
            if rest:
                nested.setdefault(head, {})[rest] = value
            else:
                flat[key] = value
        for head, sub_changes in nested.items():
            sub = flat.get(head, getattr(self, head, None))
            if isinstance(sub, Config):
                flat[head] = sub.replace(**sub_changes)
            elif isinstance(sub, Mapping):  # a parameter dict: set its keys
                flat[head] = {**sub, **sub_changes}
            else:
                raise ConfigError(f"{type(self).__name__}.{head}", sub, "a nested config or parameter dict")
        names = {f.name for f in dataclasses.fields(self)}
        for key in flat:
            if key not in names:
                raise ConfigError(f"{type(self).__name__}.{key}", flat[key],
                                  f"a field of {type(self).__name__}: {sorted(names)}")
        return dataclasses.replace(self, **flat)

    def columns(self, prefix: str = "") -> Dict[str, Any]:
        """Flatten to scalar columns: nested configs and dicts become ``<name>_<field>``."""
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            name = prefix + f.name
            if isinstance(value, Config):
                out.update(value.columns(prefix=name + "_"))
            elif isinstance(value, Mapping):
                for key, item in sorted(value.items()):
                    out[f"{name}_{key}"] = item
            elif isinstance(value, (tuple, list)):
                out[name] = json.dumps(list(value))
            else:
                out[name] = value
        return out

    def identity(self) -> Dict[str, Any]:
        """What the config's hashes (``digest``, artifact keys) are taken of: ``to_dict()`` less the
        fields declared with ``keyed_when_set`` while they hold their default, so that a field added
        later whose default keeps the old behaviour leaves every earlier run's and artifact's key as
        it was."""
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get(KEYED_WHEN_SET) and value == f.default:
                continue
            out[f.name] = value.identity() if isinstance(value, Config) else _plain(value)
        return out

    def digest(self) -> str:
        """A stable content hash of the config (sha256 of canonical JSON of ``identity()``)."""
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def _config_type(field: dataclasses.Field) -> Type[Config] | None:
    default = field.default_factory if field.default_factory is not dataclasses.MISSING else None
    if default is not None:
        try:
            sample = default()
        except TypeError:
            return None
        if isinstance(sample, Config):
            return type(sample)
    if isinstance(field.type, type) and issubclass(field.type, Config):
        return field.type
    return None
