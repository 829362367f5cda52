"""The engine: one object per process that turns image bytes into a cutout.

It holds one ONNX Runtime session per model, created on first use (or by :meth:`warm`
at worker start) and shared by every call, including calls from several threads at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from shared.contract.limits import DEFAULT_LIMITS, Limits, check_options
from shared.contract.options import Options
from worker.engine import quality, stages
from worker.engine.batching import BatchCollector, symbolic_batch
from worker.engine.custom import LRU, CustomModels, LocalResolver
from worker.engine.families import FAMILIES, U2NetFamily
from worker.engine.matting import warm_alpha_matting
from worker.engine.models import MODEL_SPECS, ensure_model, get_spec
from worker.engine.refine import refine_image, refine_probability
from worker.engine.render import render
from worker.engine.rerender import rerender as rerender_with
from worker.engine.sandbox import Sandbox, Sandboxed
from worker.engine.session import create_session
from worker.engine.stages import Masked, Result

__all__ = ["Engine"]

log = logging.getLogger(__name__)


class _Loaded:
    def __init__(self, session: ort.InferenceSession, family: type[U2NetFamily]) -> None:
        self.session = session
        self.family = family
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]  # type: ignore[no-any-return]


#: a model the engine runs: in this process, or a custom one in the sandbox
Runnable = _Loaded | Sandboxed


class Engine:
    """Background removal with rembg's behaviour.

    ``threads`` is ONNX Runtime's intra-op thread count per call; ``providers`` overrides
    the provider list; ``device="cuda"`` fails at session creation unless CUDA is really
    active. With ``sandbox`` (a worker), custom models run in its runner processes under
    its caps (worker/engine/sandbox.py); without (``cutout remove``, ``cutout eval``: a
    user's own models), in this process like the built-ins. Methods may be called from
    several threads.
    """

    def __init__(
        self,
        model_home: Path,
        *,
        threads: int = 1,
        providers: list[str] | None = None,
        device: str = "cpu",
        custom: CustomModels | None = None,
        custom_sessions: int = 4,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.model_home = Path(model_home)
        # models other than the built-ins: tuned or added (worker/engine/custom.py)
        self.custom: CustomModels = custom or LocalResolver(self.model_home)
        self._custom_loaded: LRU[_Loaded] = LRU(custom_sessions)
        self.sandbox = sandbox
        self.threads = threads
        self._providers = providers
        self.device = device
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.Lock()
        # set by the worker when CUTOUT_BATCH_SIZE > 1: concurrent calls share inference
        self.collector: BatchCollector | None = None

    # sessions -----------------------------------------------------------------------

    def _load_custom(self, model: str) -> Runnable:
        # keyed by the file's sha256: a re-registered name never reuses an old session
        key, materialize = self.custom.lookup(model)
        if self.sandbox is not None:  # loaded by the runner, on first use
            return Sandboxed(self.sandbox, model, key, materialize)
        loaded = self._custom_loaded.get(key)
        if loaded is None:
            with self._lock:
                loaded = self._custom_loaded.get(key)
                if loaded is None:
                    session = create_session(
                        symbolic_batch(materialize()),
                        threads=self.threads,
                        providers=self._providers,
                        device=self.device,
                    )
                    loaded = _Loaded(session, U2NetFamily)
                    self._custom_loaded.put(key, loaded)
        return loaded

    def _load(self, model: str) -> Runnable:
        if model not in MODEL_SPECS:
            return self._load_custom(model)
        loaded = self._loaded.get(model)
        if loaded is not None:
            return loaded
        with self._lock:
            loaded = self._loaded.get(model)
            if loaded is None:
                spec = get_spec(model)
                path = ensure_model(model, self.model_home)
                # batch dimension made symbolic: N images in one call (batching.py)
                session = create_session(
                    symbolic_batch(path),
                    threads=self.threads,
                    providers=self._providers,
                    device=self.device,
                )
                loaded = self._loaded[model] = _Loaded(session, FAMILIES[spec.family])
        return loaded

    def session(self, model: str) -> ort.InferenceSession:
        """The ONNX Runtime session of ``model``, created (and its weights fetched) once.

        Raises ModelUnavailable (weights), DeviceUnavailable (CUDA asked, not active), and
        ValueError for a custom model that runs in the sandbox (it has none here).
        """
        loaded = self._load(model)
        if isinstance(loaded, Sandboxed):
            raise ValueError(f"model {model} runs in the sandbox: no session in this process")
        return loaded.session

    def warm(self, models: Iterable[str]) -> None:
        """Fetch and load ``models`` now (worker start), so no request waits for them."""
        for model in models:
            self._load(model)

    def warm_alpha_matting(self) -> None:
        """Compile pymatting's numba code now (worker start) rather than in the first job
        that asks for alpha matting."""
        warm_alpha_matting()

    # fast mode (worker/engine/fast.py): int8 u2net on OpenVINO, beside the exact sessions
    _fast: _Loaded | None = None
    #: a fast job builds a missing model too (CUTOUT_FAST=build), rather than fail
    fast_build = False

    def _load_fast(self, *, build: bool = False) -> _Loaded:
        if self._fast is None:
            with self._lock:
                if self._fast is None:
                    from worker.engine.fast import fast_family, load_fast_session

                    session = load_fast_session(self.model_home, threads=self.threads, build=build)
                    self._fast = _Loaded(session, fast_family())  # type: ignore[arg-type]
        return self._fast

    def warm_fast(self, *, build: bool = True) -> None:
        """Load (building it first when ``build`` and it is missing or stale) the fast
        model now. Raises FastModeUnavailable without the fast extra."""
        self._load_fast(build=build)

    @property
    def fast_ready(self) -> bool:
        """Whether the fast model is loaded (what the worker's heartbeat advertises)."""
        return self._fast is not None

    def _loaded_for(self, options: Options) -> Runnable:
        return self._load_fast(build=self.fast_build) if options.fast else self._load(options.model)

    def _infer_for(self, loaded: Runnable, batch: np.ndarray) -> np.ndarray:
        if loaded is self._fast:  # one image per call: never through the batch collector
            return loaded.run(batch)
        return self._infer(loaded, batch)

    def providers(self, model: str) -> list[str]:
        """The execution providers the session of ``model`` really uses, in order."""
        return list(self.session(model).get_providers())

    # pixels -------------------------------------------------------------------------

    def _infer(self, loaded: Runnable, batch: np.ndarray) -> np.ndarray:
        # a sandboxed model runs alone in its runner: never through the batch collector
        if self.collector is None or isinstance(loaded, Sandboxed):
            return loaded.run(batch)
        return self.collector.run(str(id(loaded)), batch, loaded.run)

    def predict_outputs(self, images: list[Image.Image], model: str) -> np.ndarray:
        """The model's raw first output for ``images``, N×1×H×W, from one session call."""
        loaded = self._load(model)
        batch = np.concatenate([loaded.family.preprocess(image) for image in images])
        return loaded.run(batch)

    def predict_masks(self, images: list[Image.Image], model: str) -> list[Image.Image]:
        """:meth:`predict_mask` of each of ``images``, with one inference for all of them;
        each mask is bit-identical to the mask of that image alone (on CPU)."""
        if not images:
            return []
        loaded = self._load(model)
        output = self.predict_outputs(images, model)
        return [
            loaded.family.postprocess(output[i : i + 1], image.size)
            for i, image in enumerate(images)
        ]

    def predict_mask(self, image: Image.Image, model: str) -> Image.Image:
        """rembg's raw mask of ``image``: mode L, the image's size."""
        loaded = self._load(model)
        output = self._infer(loaded, loaded.family.preprocess(image))
        return loaded.family.postprocess(output, image.size)

    def _infer_model(self, model: str, batch: np.ndarray) -> np.ndarray:
        """A built-in ``model``'s raw first output for ``batch`` (quality.Infer)."""
        return self._infer(self._load(model), batch)

    def _refine_probability(self, image: Image.Image) -> np.ndarray:
        return refine_probability(image, self._infer_model)

    def assess(
        self,
        options: Options,
        image: Image.Image,
        output: np.ndarray,
        batch: np.ndarray | None,
        small: np.ndarray | None = None,
    ) -> quality.Quality:
        """The quality of the cutout made from ``output`` (the model's raw first output, or
        refine's fused probability) of ``image``, at ``options.score``'s level; ``batch``
        is the model's input when there was one, ``small`` the photo it was made from
        (the family's ``shrink``: the pixels the score was fitted on; else ``image`` is
        shrunk the same way). ``full`` adds the second opinion, a built-in model's pass at
        320×320 (the job's own batch when it has that size)."""
        second = None
        if options.score == "full":
            u2 = batch if batch is not None and batch.shape[-2:] == (320, 320) else None
            u2 = U2NetFamily.preprocess(image) if u2 is None else u2
            second = quality.second_opinion(u2, self._infer_model)
        return quality.assess(output, image if small is None else small, second=second)

    def _assessed(
        self,
        options: Options,
        image: Image.Image,
        output: np.ndarray,
        batch: np.ndarray | None,
        small: np.ndarray | None = None,
    ) -> quality.Quality | None:
        """:meth:`assess`, or None when it fails: an odd (custom) model's map gets no
        score, never a failed job."""
        try:
            return self.assess(options, image, output, batch, small)
        except Exception:
            log.warning("could not score the cutout", exc_info=True)
            return None

    def refined(self, image: Image.Image) -> tuple[Image.Image, Image.Image]:
        """``refine``'s alpha (mode L) and cutout (RGBA, its colours decontaminated) of
        ``image``; rendering changes the cutout's alpha in place (refine_image)."""
        return refine_image(image, self._refine_probability(image))

    def _model_for(self, options: Options) -> Runnable | None:
        """The model ``options`` run (the fast one for ``fast``); None for ``refine``,
        whose maps come from :func:`refine_probability`."""
        return None if options.refine else self._loaded_for(options)

    def _mask(
        self, image: Image.Image, options: Options, loaded: Runnable | None, *, assess: bool
    ) -> Masked:
        """The mask of ``image`` from ``loaded`` (None: refine's fused map, with its
        colours), scored when ``assess`` (worker/engine/quality.py, at ``options.score``'s
        level) from the map it was made from."""
        clock = time.perf_counter
        t1 = clock()
        colours = batch = small = None
        if loaded is None:  # refine: preprocessing is counted in inference
            t2 = t1
            output = self._refine_probability(image)
            t3 = clock()
            mask, colours = refine_image(image, output)
        else:
            small = loaded.family.shrink(image)
            batch = loaded.family.normalise(small)
            t2 = clock()
            output = self._infer_for(loaded, batch)
            t3 = clock()
            mask = loaded.family.postprocess(output, image.size)
        assessed = self._assessed(options, image, output, batch, small) if assess else None
        timings = {"preprocess": t2 - t1, "inference": t3 - t2, "score": clock() - t3}
        return Masked(mask, colours, assessed, timings)

    def render(
        self, image: Image.Image, options: Options, background: Image.Image | None = None
    ) -> Image.Image:
        """The final picture for ``options`` before encoding: the mask, then
        worker/engine/render.py's :func:`~worker.engine.render.render`, the path every job
        takes (:meth:`process` is this between its decode and its encode). ``background``:
        the decoded image of ``bg_image_url`` / ``bg_upload_key`` when the options name
        one."""
        masked = self._mask(image, options, self._model_for(options), assess=False)
        return render(image, masked.mask, options, background, masked.colours).picture

    def render_assessed(
        self, image: Image.Image, options: Options, background: Image.Image | None = None
    ) -> tuple[Image.Image, quality.Quality | None]:
        """:meth:`render`'s picture (the same pixels) and the quality of the map it was made
        from, scored as :meth:`process` scores it (None when scoring failed), from one
        inference: what ``cutout eval`` measures."""
        masked = self._mask(image, options, self._model_for(options), assess=True)
        rendered = render(image, masked.mask, options, background, masked.colours)
        return rendered.picture, masked.quality

    def process(
        self,
        data: bytes,
        options: Options,
        *,
        limits: Limits = DEFAULT_LIMITS,
        background: bytes | None = None,
    ) -> Result:
        """Decode ``data``, render it with ``options``, encode it, within ``limits`` (the
        settings, shared/contract/limits.py; their defaults when not given).

        ``background``: the bytes of ``bg_image_url`` / ``bg_upload_key``, decoded under
        the same limits as the input. Raises InvalidImage, UnsupportedFormat,
        ImageTooLarge (input or background; alpha matting's input over
        ``max_matting_pixels``; a job over ``max_job_bytes``), InvalidOption (a canvas
        over ``max_pixels``), ModelUnavailable, FastModeUnavailable.
        """
        check_options(options, limits)
        loaded = self._model_for(options)  # a missing model fails before the decode
        start = time.perf_counter()
        image, original_size = stages.decode_input(data, options, limits)
        decoded = time.perf_counter() - start
        masked = self._mask(image, options, loaded, assess=True)
        return stages.output(
            image,
            original_size,
            masked.mask,
            options,
            limits,
            background=background,
            colours=masked.colours,
            timings={"decode": decoded, **masked.timings},
            assessed=masked.quality,
        )

    def rerender(
        self,
        data: bytes,
        mask: bytes,
        options: Options,
        *,
        limits: Limits = DEFAULT_LIMITS,
        background: bytes | None = None,
    ) -> tuple[Result, Image.Image]:
        """:meth:`process`'s result of ``data`` with the corrected ``mask`` (a PNG's
        bytes, worker/engine/rerender.py) instead of the model's: no model runs. Also
        the mask as stored (grey, the input's size). Raises what :meth:`process` raises
        for the input and the background, and the same errors for the mask (field
        ``mask``), MaskSizeMismatch included."""
        return rerender_with(data, mask, options, limits, background=background)
