"""One served task: its predictor, batcher and limits; a request's parameters mapped to the
predictor's call options; its entry in `GET /v1/tasks` and in the OpenAPI schema."""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from taskzoo.errors import InputError, did_you_mean
from taskzoo.serve.batching import Batcher
from taskzoo.serve.inputs import Limits, Payload, RequestError, check_count, describe, image_items

JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


class ServedTask:
    """A predictor behind `POST /v1/TASK/predict`.

    >>> served = ServedTask("sentiment", taskzoo.load("sentiment"))   # doctest: +SKIP
    >>> await served.answer(Payload("a fine film", {}))                # doctest: +SKIP
    [[{'label': 'positive', 'score': 0.98}]]
    """

    def __init__(self, name: str, predictor: Any, *, description: str = "",
                 limits: Limits = Limits(), max_batch: int = 32, max_wait_ms: float = 5.0) -> None:
        self.name, self.predictor, self.description = name, predictor, description
        self.limits = limits
        self.batcher = Batcher(predictor, max_batch=max_batch, max_wait_ms=max_wait_ms, name=name)
        self.options = [o for o in predictor.call_options if o.serve]
        # images decode on two threads of the task's own: each thread that allocates gets a
        # malloc arena of its own, and a pool of dozens (Starlette's) let the server's memory
        # creep up under load
        self._decoder: ThreadPoolExecutor | None = None

    @property
    def kind(self) -> str:
        """What one input of a request is (the predictor's `serve_input`)."""
        return str(getattr(self.predictor, "serve_input", "text"))

    def call_options(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """A request's parameters as the predictor's checked call options; a Hugging Face
        name (`threshold`) stands for the option it maps to (`conf`)."""
        hf = dict(getattr(self.predictor, "hf_parameters", {}))
        served = {o.name: o for o in self.options}
        out: dict[str, Any] = {}
        for key, value in parameters.items():
            name = hf.get(key, key)
            if name not in served:
                valid = [*served, *hf]
                held = any(o.name == name for o in self.predictor.call_options)
                why = " (it names or writes files of the server's machine)" if held else ""
                raise InputError(f"parameter {key!r} is not taken by {self.name}{why}; it takes "
                                 f"{', '.join(valid) or 'none'}.{did_you_mean(key, valid)}")
            if name in out:
                raise InputError(f"parameter {name!r} given twice (as {key!r} too)")
            if isinstance(value, (dict, list)):
                raise InputError(f"parameter {key!r}: expected {served[name].expected()}, got "
                                 f"{describe(value)}")
            out[name] = value
        checked = self.predictor.check_options(out)
        for key, value in checked.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise InputError(f"parameter {key!r}: expected {served[key].expected()}, got "
                                 f"{value}")
        return checked

    async def close(self) -> None:
        """Stop the batcher and the decoding threads."""
        await self.batcher.close()
        if self._decoder is not None:
            self._decoder.shutdown(wait=False, cancel_futures=True)
            self._decoder = None

    async def answer(self, payload: Payload) -> Any:
        """The JSON answer to one request; InputError (a 4xx) for a bad one."""
        options = self.call_options(payload.parameters)
        if self.kind == "image":
            # decoding is CPU work: off the event loop, beside the predictor's thread
            if self._decoder is None:
                self._decoder = ThreadPoolExecutor(2, thread_name_prefix=f"taskzoo-decode-{self.name}")
            items, single = await asyncio.get_running_loop().run_in_executor(
                self._decoder, image_items, payload, self.limits)
        elif isinstance(payload.inputs, bytes):
            raise RequestError(f"{self.name} takes JSON {{\"inputs\": ...}} ({self.kind}), not "
                               "an upload", 415)
        else:
            if isinstance(payload.inputs, list):
                check_count(len(payload.inputs), self.limits)
            items, single = self.predictor.items(payload.inputs, **options)
        check_count(len(items), self.limits)
        items = [self.predictor.from_request(x) for x in items]
        return await self.batcher.submit(items, options, single=single)

    # -- what clients are told
    def option_records(self) -> list[dict[str, Any]]:
        """The served options: name, type, default (the predictor's setting), help, range,
        choices."""
        defaults = self.predictor.option_defaults()
        return [{"name": o.name, "type": o.type.__name__, "default": defaults.get(o.name),
                 "help": o.help, "low": o.low, "high": o.high, "choices": list(o.choices)}
                for o in self.options]

    def record(self) -> dict[str, Any]:
        """This task's entry in `GET /v1/tasks`."""
        return {"task": self.name, "input": self.kind,
                "hf_task": str(getattr(self.predictor, "hf_task", "")),
                "description": self.description, "options": self.option_records(),
                "hf_parameters": dict(getattr(self.predictor, "hf_parameters", {})),
                "path": f"/v1/{self.name}/predict"}

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI operation fields of this task's endpoint: the request body's schema
        (inputs by kind, each parameter with its type, default and range) and the media."""
        params: dict[str, Any] = {}
        defaults = self.predictor.option_defaults()
        for o in self.options:
            schema: dict[str, Any] = {"type": JSON_TYPES.get(o.type, "string"),
                                      "description": o.help or o.expected()}
            if defaults.get(o.name) is not None:
                schema["default"] = defaults[o.name]
            if o.low is not None:
                schema["exclusiveMinimum" if o.low_open else "minimum"] = o.low
            if o.high is not None:
                schema["maximum"] = o.high
            if o.choices:
                schema["enum"] = list(o.choices)
            params[o.name] = schema
        for hf_name, name in getattr(self.predictor, "hf_parameters", {}).items():
            if name in params and hf_name != name:
                params[hf_name] = {**params[name], "description": f"Hugging Face's name of {name}"}
        body = {"type": "object", "required": ["inputs"],
                "properties": {"inputs": INPUT_SCHEMAS.get(self.kind, {}),
                               "parameters": {"type": "object", "properties": params,
                                              "additionalProperties": False}}}
        content: dict[str, Any] = {"application/json": {"schema": body}}
        if self.kind == "image":
            content["multipart/form-data"] = {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary",
                                        "description": "an image, or a short video (its frames)"},
                               "parameters": {"type": "string",
                                              "description": "a JSON object of parameters"}}}}
            content["image/*"] = {"schema": {"type": "string", "format": "binary"}}
        hf = getattr(self.predictor, "hf_task", "")
        return {"requestBody": {"required": True, "content": content},
                "x-taskzoo-input": self.kind, **({"x-hf-task": hf} if hf else {})}


_TEXTS = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
_PAIR = {"type": "object", "required": ["question", "context"],
         "properties": {"question": {"type": "string"}, "context": {"type": "string"}}}
_CANDIDATES = {"type": "object", "required": ["question", "candidates"],
               "properties": {"question": {"type": "string"},
                              "candidates": {"type": "array", "items": {"type": "string"}}}}
INPUT_SCHEMAS: dict[str, dict[str, Any]] = {
    "text": _TEXTS,
    "image": {"oneOf": [{"type": "string", "format": "byte",
                         "description": "base64 image data or a data: URL (never a path)"},
                        {"type": "array", "items": {"type": "string", "format": "byte"}}]},
    "text-pair": {"oneOf": [_PAIR, {"type": "array", "items": _PAIR}]},
    "question-candidates": {"oneOf": [_CANDIDATES, {"type": "array", "items": _CANDIDATES}]},
    "observation": {"description": "one observation (a JSON array, or a state number) or a "
                                   "list of them"},
}
