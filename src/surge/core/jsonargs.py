"""How an HTTP job's JSON ``input`` becomes a call's arguments.

One rule, decided from the function's signature and the value:

1. ``input`` is a JSON object whose keys bind to the function's parameters as keyword arguments
   (every required parameter present, no unknown key unless it takes ``**kwargs``) → called as
   ``f(**input)``;
2. otherwise, if the function can be called with one positional argument → ``f(input)`` (the
   whole object, list, string, number or null as its first parameter);
3. otherwise the input does not fit, and the job fails with a message naming the signature.

So ``def embed(text: str)`` takes ``{"text": "hi"}`` as ``embed(text="hi")``, and
``def handler(event: dict)`` takes ``{"prompt": "hi", "n": 2}`` as ``handler({"prompt": ..., "n": 2})``.

>>> def embed(text, n=1): ...
>>> bind_json(inspect.signature(embed), {"text": "hi"})
((), {'text': 'hi'})
>>> bind_json(inspect.signature(embed), {"prompt": "hi"})
(({'prompt': 'hi'},), {})
"""

from __future__ import annotations

import inspect
from typing import Any


def bind_json(signature: inspect.Signature, value: object) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` for a call with the decoded JSON ``value`` (rule above); TypeError when
    it fits neither way."""
    keyword_error = None
    if isinstance(value, dict):
        try:
            signature.bind(**value)
            return (), dict(value)
        except TypeError as exc:
            keyword_error = exc
    try:
        signature.bind(value)
        return (value,), {}
    except TypeError as exc:
        why = keyword_error or exc
        bare = signature.replace(parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
                                 return_annotation=signature.empty)
        raise TypeError(
            f"the job input does not fit the function's parameters {bare}: {why}. Send a JSON "
            "object whose keys are the parameter names, or any JSON value for a function taking one "
            "argument") from None
