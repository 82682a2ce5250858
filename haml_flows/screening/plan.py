"""Screens: one base RunSpec crossed with dopants x concentrations x seeds.

A screen file holds only a top-level ``screen`` key::

    screen:
      name: lpsc_dopant_screen
      base: li_lpsc.yaml            # RunSpec file, relative to the screen file
      vary: system.parameters       # dotted path of the mapping each candidate updates
      dopants: [Se, F, O]           # or {Se: {host: S_4d}, F: {host: Cl_4a}, ...}
      concentrations: [0.25, 0.5]   # fraction of the host site family
      seeds: [42, 43]               # reference.seed: the first velocity draw
      parameters: {site_rule: interface}   # merged into `vary` for every candidate
      include_undoped: true         # one undoped candidate per seed, the baseline
      category: ""                  # FireWorks _category of the candidate's jobs

or, instead of ``dopants`` and ``concentrations``, explicit ``variants``
(``{key: {dopant: Se, ...}}``) merged into ``vary`` one by one.

Each candidate is the base with its keys merged into ``vary`` and, when
``seeds`` is given, ``reference.seed`` set. Its name is
``<base name>_<dopant or variant key>``, followed by ``_c<concentration>``
when the screen has more than one concentration and ``_s<seed>`` when it has
more than one seed. Every candidate's mapping is validated as a RunSpec here,
so a bad screen fails before anything is built or submitted.
"""

from __future__ import annotations

import difflib

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from haml_flows.builders.doping import ALLOWED_HOSTS, DEFAULT_HOST, DOPANT_CHARGES
from haml_flows.spec import RunSpec, SpecError, parse_spec

SCREEN_KEYS = {
    "name", "base", "vary", "variants", "dopants", "concentrations", "seeds",
    "parameters", "include_undoped", "category",
}
REQUIRED_KEYS = {"name", "base", "vary"}


@dataclass(frozen=True)
class Candidate:
    """One expanded screen member: its validated spec and the labels it is found by."""

    name: str
    spec: RunSpec
    data: dict
    dopant: str | None
    concentration: float | None
    host: str | None
    seed: int
    variant: str

    @property
    def spec_hash(self) -> str:
        """sha256 of the resolved spec (all defaults filled in), canonical JSON."""
        return spec_hash(self.spec)


@dataclass(frozen=True)
class ScreenPlan:
    """A screen file expanded: its name, base spec name and candidates in order."""

    name: str
    system: str
    category: str
    candidates: list[Candidate]
    source: Path


def spec_hash(spec: RunSpec) -> str:
    """sha256 hex digest of the resolved spec as canonical JSON."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _fail(path: Path, message: str) -> SpecError:
    return SpecError(f"{path}: {message}")


def _nonempty_list(path: Path, screen: dict, key: str, kind: type | tuple) -> list | None:
    if key not in screen:
        return None
    value = screen[key]
    if not isinstance(value, list) or not value:
        raise _fail(path, f"screen.{key} must be a non-empty list, got {value!r}")
    for item in value:
        if not isinstance(item, kind) or isinstance(item, bool):
            what = kind.__name__ if isinstance(kind, type) else "number"
            raise _fail(path, f"screen.{key}: {item!r} is not a {what}")
    if len(set(value)) != len(value):
        raise _fail(path, f"screen.{key} repeats a value: {value}")
    return value


def _dopants(path: Path, screen: dict) -> dict[str, dict]:
    """Dopant -> extra keys (host, ...), checked against the known dopants."""
    value = screen["dopants"]
    if isinstance(value, list):
        value = {d: {} for d in value} if all(isinstance(d, str) for d in value) else value
    if not isinstance(value, dict) or not value:
        raise _fail(
            path,
            f"screen.dopants must be a non-empty list or mapping of dopants; "
            f"allowed: {sorted(DOPANT_CHARGES)}",
        )
    out = {}
    for dopant, extra in value.items():
        if dopant not in DOPANT_CHARGES:
            raise _fail(
                path, f"screen.dopants: unknown dopant {dopant!r}; allowed: "
                f"{sorted(DOPANT_CHARGES)}"
            )
        extra = extra or {}
        if not isinstance(extra, dict):
            raise _fail(path, f"screen.dopants.{dopant} must be a mapping, got {extra!r}")
        host = extra.get("host", DEFAULT_HOST[dopant])
        if host not in ALLOWED_HOSTS[dopant]:
            raise _fail(
                path, f"screen.dopants.{dopant}.host: unknown host {host!r}; "
                f"allowed: {list(ALLOWED_HOSTS[dopant])}"
            )
        out[dopant] = {**extra, "host": host}
    return out


def _load(path: Path) -> dict:
    if not path.exists():
        raise SpecError(f"screen file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise _fail(path, f"malformed YAML: {exc}") from None
    if not isinstance(data, dict) or set(data) != {"screen"}:
        raise _fail(path, "a screen file holds exactly one top-level key 'screen'")
    screen = data["screen"]
    if not isinstance(screen, dict):
        raise _fail(path, "'screen' must be a mapping")
    unknown = sorted(set(screen) - SCREEN_KEYS)
    missing = sorted(REQUIRED_KEYS - set(screen))
    if unknown or missing:
        said = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(SCREEN_KEYS), n=1)
            said.append(f"unknown key screen.{key}"
                        + (f" (did you mean {close[0]}?)" if close else ""))
        said += [f"missing key screen.{key}" for key in missing]
        raise _fail(path, "; ".join(said) + f"; allowed: {', '.join(sorted(SCREEN_KEYS))}")
    has_variants = "variants" in screen
    has_dopants = "dopants" in screen
    if has_variants == has_dopants:
        raise _fail(path, "give exactly one of screen.variants or screen.dopants")
    if has_variants and "concentrations" in screen:
        raise _fail(path, "screen.concentrations goes with screen.dopants, not variants")
    return screen


def _variants(path: Path, screen: dict) -> list[tuple[str, dict, str | None, float | None]]:
    """(label, keys for `vary`, dopant, concentration) of every composition."""
    common = screen.get("parameters") or {}
    if not isinstance(common, dict):
        raise _fail(path, f"screen.parameters must be a mapping, got {common!r}")
    out = []
    if "variants" in screen:
        variants = screen["variants"]
        if not isinstance(variants, dict):
            raise _fail(path, "screen.variants must be a mapping of name -> keys")
        for key, changes in variants.items():
            if not isinstance(changes, dict):
                raise _fail(path, f"screen.variants.{key} must be a mapping")
            changes = {**common, **changes}
            out.append((str(key), changes, changes.get("dopant"), changes.get("concentration")))
        return out
    dopants = _dopants(path, screen)
    concentrations = _nonempty_list(path, screen, "concentrations", (int, float)) or [0.25]
    for c in concentrations:
        if not 0 < c <= 1:
            raise _fail(path, f"screen.concentrations: {c} is outside (0, 1]")
    many = len(concentrations) > 1
    for dopant, extra in dopants.items():
        for c in concentrations:
            label = dopant.lower() + (f"_c{c:g}" if many else "")
            changes = {**common, **extra, "dopant": dopant, "concentration": float(c)}
            out.append((label, changes, dopant, float(c)))
    if screen.get("include_undoped", False):
        out.insert(0, ("undoped", {**common, "dopant": None}, None, None))
    return out


def expand_candidates(path: str | Path) -> ScreenPlan:
    """Expand and validate a screen file; raises SpecError naming the field."""
    path = Path(path)
    screen = _load(path)
    base_path = path.parent / screen["base"]
    if not base_path.exists():
        raise _fail(path, f"screen.base: {base_path} does not exist")
    base = yaml.safe_load(base_path.read_text())
    if not isinstance(base, dict) or "name" not in base:
        raise _fail(path, f"screen.base: {base_path} is not a RunSpec with a name")
    seeds = _nonempty_list(path, screen, "seeds", int)
    category = screen.get("category") or ""
    if not isinstance(category, str):
        raise _fail(path, f"screen.category must be a string, got {category!r}")
    candidates: list[Candidate] = []
    for label, changes, dopant, concentration in _variants(path, screen):
        for seed in seeds or [None]:
            data: dict[str, Any] = copy.deepcopy(base)
            target = data
            for part in str(screen["vary"]).split("."):
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    raise _fail(path, f"screen.vary: {screen['vary']!r} is not a mapping")
            target.update(copy.deepcopy(changes))
            if dopant is None:
                target.pop("dopant", None)
            if seed is not None:
                data.setdefault("reference", {})["seed"] = seed
            suffix = f"_s{seed}" if seeds and len(seeds) > 1 else ""
            data["name"] = f"{base['name']}_{label}{suffix}"
            try:
                spec = parse_spec(data)
            except SpecError as exc:
                raise _fail(path, f"candidate {data['name']}: {exc}") from None
            candidates.append(
                Candidate(
                    name=data["name"],
                    spec=spec,
                    data=data,
                    dopant=dopant,
                    concentration=concentration if dopant else None,
                    host=changes.get("host") if dopant else None,
                    seed=spec.reference.seed,
                    variant=label,
                )
            )
    return ScreenPlan(
        name=str(screen["name"]),
        system=str(base["name"]),
        category=category,
        candidates=candidates,
        source=path.resolve(),
    )


def expand_screen(path: str | Path) -> dict[str, dict]:
    """Candidate name -> RunSpec mapping. Raises ValueError on a malformed screen."""
    return {c.name: c.data for c in expand_candidates(path).candidates}
