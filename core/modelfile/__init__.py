"""Reading uploaded scikit-learn model files without ever running code they carry.

Three formats are accepted, recognised by content and never by the file name:

* skops archives: the archive's own list of untrusted types is checked against the
  server's allow-list, and only the checked names are passed to ``skops.io.loads``.
* pickle streams (protocols 2 to 5) and joblib files (plain or compressed): every
  instruction is read statically first, on a symbolic stack, and any reference to a
  name outside the allow-list (or any instruction a model file never needs) refuses
  the file before anything is unpickled. Loading then goes through an unpickler whose
  ``find_class`` admits only exact allow-listed names.

The scan also refuses numpy element types whose saved state is not exactly what numpy
writes for a sound type (numpy trusts that state, and a crafted one crashes the process),
and allocating calls with huge sizes. After loading, decision trees (scikit-learn ``Tree``
and histogram-boosting predictors) must have node links that stay inside the tree and
point forward, so prediction cannot read outside its arrays or loop.

Sizes are capped before and during decompression, so archive and stream bombs are
refused before they are inflated.

The layers, in the order a file meets them: ``sniff`` (format by content, capped
decompression), ``scan`` (the static pickle scan), ``loader`` (the guarded unpickler and
skops), ``describe`` (estimator and tree checks, the summary), ``parameters`` (what the
model may do when it runs); ``allowlist`` holds the allowed names and the refusal messages.
Only the sandbox worker (core.sandbox) calls this on an uploaded file.
"""

from __future__ import annotations

from typing import Any

from core.errors import InvalidInput, QuorumError, UnsafeArtifact
from core.modelfile.allowlist import FORMATS as FORMATS
from core.modelfile.allowlist import MAX_MODEL_BYTES as MAX_MODEL_BYTES
from core.modelfile.allowlist import _allowed_types
from core.modelfile.allowlist import skops_conversion_hint as skops_conversion_hint
from core.modelfile.describe import InspectedModel as InspectedModel
from core.modelfile.describe import _describe, _require_estimator, _require_sound_trees
from core.modelfile.describe import summary_json as summary_json
from core.modelfile.loader import _load_pickle_family, _load_skops
from core.modelfile.loader import _unpickle as _unpickle
from core.modelfile.parameters import require_safe_parameters
from core.modelfile.scan import _PickleScan as _PickleScan
from core.modelfile.scan import _ScanResult as _ScanResult
from core.modelfile.sniff import _compression_of
from core.modelfile.sniff import sniff_format as sniff_format

# ---------------------------------------------------------------------------
# Public entry points


def _require_format(fmt: str, formats: tuple[str, ...]) -> None:
    if fmt in formats:
        return
    accepted = " or ".join(formats)
    raise UnsafeArtifact(
        f"The file is a {fmt} file, and this server accepts only {accepted} model files "
        f"(QUORUM_MODEL_FORMATS); it was refused and not stored. {skops_conversion_hint()}"
    )


def _load(
    data: bytes,
    max_bytes: int,
    formats: tuple[str, ...] = FORMATS,
    allowed_patterns: frozenset[str] = frozenset(),
) -> tuple[Any, str, str | None]:
    if len(data) > max_bytes:
        raise InvalidInput(
            f"The model file is {len(data) / 1e6:.1f} MB, above the {max_bytes / 1e6:.0f} MB "
            "limit. Remove training data kept on the model, or ask an administrator to raise "
            "the limit."
        )
    fmt = sniff_format(data)
    if fmt == "skops":
        _require_format(fmt, formats)
        obj, version = _load_skops(data, max_bytes)
    else:
        _require_format("joblib" if _compression_of(data) else fmt, formats)
        obj, fmt, version = _load_pickle_family(data, max_bytes)
        _require_format(fmt, formats)
    _require_estimator(obj)
    _require_sound_trees(obj)
    require_safe_parameters(obj, allowed_patterns)
    return obj, fmt, version


def _name_mismatch(data: bytes, filename: str) -> list[str]:
    suffix = filename.lower().rsplit(".", 1)[-1] if "." in filename else ""
    kind = "a pickle stream" if data[:1] == b"\x80" else ""
    kind = kind or ("compressed data" if _compression_of(data) else "")
    if suffix == "skops" and kind:
        return [f"the file is named .skops but its content is {kind}"]
    return []


def load_model_bytes(data: bytes, *, max_bytes: int = MAX_MODEL_BYTES) -> Any:
    """Load an uploaded model with the same checks as inspect_model_bytes; return the estimator."""
    return _load(data, max_bytes)[0]


def inspect_model_bytes(
    data: bytes,
    *,
    filename: str = "",
    max_bytes: int = MAX_MODEL_BYTES,
    formats: tuple[str, ...] = FORMATS,
    allowed_patterns: frozenset[str] = frozenset(),
) -> InspectedModel:
    """Check, load and describe an uploaded model file; raise a QuorumError on refusal.
    Only the sandbox worker calls this on an upload (core.sandbox.worker)."""
    try:
        estimator, fmt, version = _load(data, max_bytes, formats, allowed_patterns)
    except QuorumError as exc:
        if filename:
            exc.details = [f"file: {filename}", *_name_mismatch(data, filename), *exc.details]
        raise
    try:
        return _describe(estimator, data, fmt, version)
    except Exception as exc:  # noqa: BLE001 - a damaged saved state fails in many ways
        raise InvalidInput(
            f"The file holds a {type(estimator).__name__} whose saved state is incomplete or "
            f"damaged ({type(exc).__name__}). Save the fitted model again and upload "
            "the new file.",
            details=[f"file: {filename}"] if filename else None,
        ) from exc


def warm_up() -> None:
    """Import everything a load needs (the allow-list imports every estimator module)."""
    _allowed_types()
    import skops.io  # noqa: F401
    from sklearn.feature_extraction.text import _VectorizerMixin  # noqa: F401


def __getattr__(name: str) -> Any:
    if name == "ALLOWED_TYPES":
        return _allowed_types()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
