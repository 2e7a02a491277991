"""The actor vocabulary: the one table that maps actor names to ``uint8`` codes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import DamagedStoreError, MissingActorError, SchemaError, UnknownActorError

MAX_ACTORS = 255  # codes are uint8; 255 is kept free as a sentinel


def _text(name):
    """Actor names given as bytes are UTF-8 text; bytes that are not get a clear error, not UnicodeDecodeError."""
    if not isinstance(name, bytes):
        return name
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        raise UnknownActorError(f"actor name {name!r} is bytes that are not UTF-8 text; give names as str") from None


class Actors:
    """An immutable, ordered vocabulary of actor names; code ``i`` is ``names[i]``.

    >>> a = Actors(("expert", "dqn"))
    >>> a.code("dqn"), a.name(0)
    (1, 'expert')
    """

    __slots__ = ("names", "_lookup")

    def __init__(self, names: Iterable[str]):
        names = tuple(_text(n) for n in names)
        if not names:
            raise SchemaError(
                "actors=(): a store needs at least one actor name, e.g. actors=('expert', 'dqn')"
            )
        if len(names) > MAX_ACTORS:
            raise SchemaError(f"{len(names)} actors given; at most {MAX_ACTORS} fit a uint8 code")
        for n in names:
            if not isinstance(n, str) or not n or not n.isprintable():
                raise SchemaError(f"actor name {n!r} is invalid: expected a non-empty printable str")
        if len(set(names)) != len(names):
            raise SchemaError(f"actor names must be unique, got {names!r}")
        self.names: tuple[str, ...] = names
        lookup: dict = {}
        for code, name in enumerate(names):
            lookup[name] = code
            lookup[code] = code
            lookup[np.uint8(code)] = code
        self._lookup = lookup

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def __eq__(self, other) -> bool:
        return isinstance(other, Actors) and other.names == self.names

    def __repr__(self) -> str:
        return f"Actors({self.names!r})"

    def code(self, actor) -> int:
        """The code of ``actor`` (a name, or a code already); raises if it is not in the vocabulary."""
        if isinstance(actor, (bool, np.bool_)):
            raise UnknownActorError(
                f"actor={actor!r}: a bool is not an actor; expected a name from {list(self.names)} or its code"
            )
        if isinstance(actor, (float, np.floating)):  # 1.0 == 1 would find code 1 in the lookup table
            raise UnknownActorError(
                f"actor={actor!r}: a float is not an actor code; expected a name from {list(self.names)} "
                "or an integer code (extend() refuses float actor columns the same way)"
            )
        try:
            return self._lookup[actor]
        except (KeyError, TypeError):
            pass
        if actor is None:
            raise MissingActorError(
                f"actor=None: every row needs an actor tag, one of {list(self.names)}"
            )
        if isinstance(actor, (int, np.integer)) and not isinstance(actor, bool):
            raise UnknownActorError(
                f"actor code {int(actor)} is not in the vocabulary {self.as_dict()}; "
                f"expected a code in [0, {len(self.names) - 1}] or a name"
            )
        raise UnknownActorError(
            f"actor {actor!r} is not in the store's vocabulary {list(self.names)}; "
            "the vocabulary is fixed when the store is created (ReplayStore.create(..., actors=...))"
        )

    def name(self, code: int) -> str:
        return self.names[code]

    def codes(self, actors) -> np.ndarray:
        """Codes of a block of actors given as names or codes; validated in one vectorized pass."""
        arr = np.asarray(actors)
        if arr.dtype.kind in "US" or arr.dtype == object:
            flat = arr.reshape(-1)
            try:
                uniq, inv = np.unique(flat, return_inverse=True)
            except TypeError:  # unorderable objects (None among names): code() names the bad one
                uniq, inv = flat, np.arange(flat.size)
            table = np.array([self.code(_text(u)) for u in uniq.tolist()], dtype=np.uint8)
            return table[inv].reshape(arr.shape)
        if arr.dtype.kind in "iu":
            if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= len(self.names)):
                bad = arr[(arr < 0) | (arr >= len(self.names))].reshape(-1)[0]
                raise UnknownActorError(
                    f"actor code {int(bad)} is not in the vocabulary {self.as_dict()}; "
                    f"expected codes in [0, {len(self.names) - 1}]"
                )
            return arr.astype(np.uint8, copy=False)
        raise UnknownActorError(
            f"actor column of dtype {arr.dtype} given; expected names (str) or integer codes "
            f"from {self.as_dict()}"
        )

    def as_dict(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    def to_json(self) -> str:
        return json.dumps({str(i): n for i, n in enumerate(self.names)})

    @classmethod
    def from_json(cls, text: str) -> "Actors":
        from ..files._untrusted import loads

        d = loads(text, "the actor vocabulary")
        if not isinstance(d, dict) or sorted(d) != sorted(str(i) for i in range(len(d))) or \
                not all(isinstance(v, str) for v in d.values()):
            raise DamagedStoreError(f"the actor vocabulary {text!r:.200} is damaged: expected {{'0': name, '1': name, "
                                    "...}, as Actors.to_json writes")
        return cls(d[str(i)] for i in range(len(d)))

    @classmethod
    def coerce(cls, actors: "Actors | Sequence[str]") -> "Actors":
        return actors if isinstance(actors, Actors) else cls(actors)
