"""Tag -> keys index of an in-process cache, for ``invalidate_tags``."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["TagIndex"]


class TagIndex:
    """Both directions of the key/tag relation, so untagging a key costs O(its tags).

    Not thread-safe: the owning cache calls it under its lock.
    """

    __slots__ = ("_tag_keys", "key_tags")

    def __init__(self) -> None:
        #: key -> its tags. Never rebound, so a cache may hold it and test its emptiness with
        #: no Python call on its write path (``__bool__`` costs one per write).
        self.key_tags: dict[str, frozenset[str]] = {}
        self._tag_keys: dict[str, set[str]] = {}

    def __bool__(self) -> bool:
        return bool(self.key_tags)

    def tag(self, key: str, tags: frozenset[str]) -> None:
        """Give ``key`` exactly ``tags`` (replacing what it had)."""
        self.untag(key)
        self.key_tags[key] = tags
        for tag in tags:
            members = self._tag_keys.get(tag)
            if members is None:
                self._tag_keys[tag] = {key}
            else:
                members.add(key)

    def untag(self, key: str) -> None:
        tags = self.key_tags.pop(key, None)
        if tags:
            for tag in tags:
                members = self._tag_keys[tag]
                members.discard(key)
                if not members:
                    del self._tag_keys[tag]

    def tags_of(self, key: str) -> frozenset[str] | None:
        return self.key_tags.get(key)

    def keys_for(self, tags: Iterable[str]) -> set[str]:
        """Keys carrying any of ``tags``."""
        found: set[str] = set()
        for tag in tags:
            found |= self._tag_keys.get(tag, set())
        return found

    def clear(self) -> None:
        self.key_tags.clear()
        self._tag_keys.clear()
