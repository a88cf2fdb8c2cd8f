"""Reading and addressing settings: YAML files and built-in presets, dotted-name overrides
(``--set optics.na=1.0``), validation with one readable error (:class:`ConfigError`), and
:class:`Settings`, the base of every settings model.
The settings models themselves are in :mod:`simulate.config` (and :mod:`restore.config`)."""

from __future__ import annotations

import difflib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError


class Settings(BaseModel):
    """Base of every settings model: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def validate(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """Validate ``data`` against ``model``; turn pydantic's errors into one :class:`ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError(f"a configuration must be a mapping of settings, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each starting with the dotted name of the setting."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        got = err.get("input")
        quiet = isinstance(got, dict) or err["type"] == "extra_forbidden" or "got " in msg
        shown = "" if quiet else f" (got {got!r})"
        lines.append(f"{loc}: {msg}{shown}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def field_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    """All dotted setting names of a model, leaves only (``optics.na``, ``camera.photons``, ...)."""
    names = []
    for name, info in model.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            names += field_names(sub, f"{prefix}{name}.")
        else:
            names.append(prefix + name)
    return names


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``"a.b=value"``; the value is parsed as YAML (``1.0``, ``[16,64,64]``, ``null``)."""
    if "=" not in item:
        raise ConfigError(f"--set expects name=value (e.g. optics.na=1.0), got {item!r}")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse value {text!r}: {exc}") from None
    return key.strip(), value


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any],
                    model: type[BaseModel]) -> dict[str, Any]:
    """Apply dotted-name overrides to a nested dict; an unknown name raises :class:`ConfigError`."""
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
    known = field_names(model)
    groups = {n.rsplit(".", 1)[0] for n in known if "." in n}
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for key, value in items:
        if key not in known and key not in groups:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown setting '{key}'{hint} (see `synthcare presets --fields`)")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return data


def camera_overrides(path: str | Path) -> list[str]:
    """``--set`` overrides for the camera settings in a YAML file (its ``camera:`` mapping, as
    ``synthcare calibrate`` writes, or a bare mapping of camera settings)."""
    data = read_yaml(path)
    cam = data.get("camera", data)
    if not isinstance(cam, dict) or not cam:
        raise ConfigError(f"{path} holds no camera settings (expected a 'camera:' mapping)")
    return [f"camera.{k}={json.dumps(v)}" for k, v in cam.items()]


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML/JSON mapping, with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return data


def list_presets() -> list[str]:
    """Names of the built-in presets."""
    files = resources.files("simulate").joinpath("presets").iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """The YAML text of a built-in preset."""
    if name not in list_presets():
        close = difflib.get_close_matches(name, list_presets(), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"unknown preset '{name}'{hint}; known: {', '.join(list_presets())}")
    return resources.files("simulate").joinpath("presets", f"{name}.yaml").read_text()


def load_preset(name: str) -> dict[str, Any]:
    """The raw settings of a built-in preset (a dict; may include a ``train`` section)."""
    return yaml.safe_load(preset_text(name))


def load_settings(model: type[BaseModel], preset: str | None = None,
                  config: str | Path | None = None, overrides: list[str] | None = None) -> Any:
    """The settings a command line asks for, as ``model``: ``--preset`` or ``--config``, then
    ``--set`` overrides, applied to the raw settings before one validation (so a setting derived
    from others, left unset, is derived from the overridden values). A ``train:`` section is
    dropped for a model without one."""
    if preset and config:
        raise ConfigError("give either --preset or --config, not both")
    if config:
        data = read_yaml(config)
    elif preset:
        data = load_preset(preset)
    else:
        raise ConfigError(f"give --preset NAME (one of {', '.join(list_presets())}) or --config FILE")
    if "train" not in model.model_fields:
        data.pop("train", None)
    return validate(model, apply_overrides(data, overrides or [], model))
