"""The vector index behind one small interface, with two engines.

* :class:`ClientIndex` talks to a Qdrant server through ``qdrant-client`` (compose; also
  qdrant-client's own local mode, which the congruence tests use as a stand-in server).
* :class:`EdgeIndex` embeds the Qdrant engine in the process through Qdrant Edge
  (``qdrant-edge-py``): the embedded default, no server to run.

Why Edge and not qdrant-client's local mode for the embedded engine: measured on this 2-core
machine with 20,000 points of 1280-d (``/tmp`` scratch run, recorded in
``docs/lab/2026-11-first-figures.md``), local mode upserted ~580 points/s and answered a
category-filtered top-50 query in ~230 ms (p50: it scans points in Python); Edge upserted
~20,000 points/s and answered the same query in ~1.2 ms with a keyword payload index. Local
mode cannot meet the /recommend budget at catalog scale.

How Edge stores and searches (measured on 2 cores, 100,000 random 256-d points, one query at a
time; ``lookalike bench --only knn`` has the current figures): Edge 0.9 builds an HNSW graph only
in ``optimize()``, which holds the GIL for its whole run (97 s at 100k: the one embedded process
would freeze). So collections are created without a graph (``m=0``) and with int8 scalar
quantization: ``optimize()`` then only quantizes and merges (~1.2 s at 100k, run by the index
owner when enough points wait, see :meth:`VectorIndex.maintain`), and every query is an exact
scan of the int8 vectors rescored on the float ones (2x oversampling): p95 6.5 ms at recall@10
1.0, against 15.6 ms for a float scan and 2.2 ms at recall 0.44 for the default HNSW. Points
written since the last optimisation are scanned as floats. The Qdrant server builds its HNSW
graph in the background and needs none of this.

A collection per model version sits behind an alias (``catalog``); ``reindex`` fills a new
collection and then switches the alias, so queries keep working meanwhile. Scores are Qdrant's:
similarity for cosine (higher is better), distance for L1 (lower is better); hits always come
back best first.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from shared import index_holder
from shared.errors import ConfigurationError, InvalidInputError, NotFoundError

log = logging.getLogger(__name__)

Distance = Literal["cosine", "l1"]
PayloadType = Literal["keyword", "integer", "float"]
Strategy = Literal["best_score", "sum_scores"]
"""Qdrant's recommend strategies that both engines have: ``best_score`` (a point's best
similarity to a positive example, or minus its best to a negative one when that is higher; both
passed through Qdrant's scaled sigmoid, see :func:`best_score_similarity`) and ``sum_scores``
(the similarities to the positives summed, minus those to the negatives)."""
Scalar = str | int | float


@dataclass(frozen=True)
class VectorSpec:
    """A named vector: dense (``size`` floats, ``distance``) or sparse (``kind="sparse"``:
    token ids and weights, scored by dot product with Qdrant's IDF modifier; ``size`` unused)."""

    size: int
    distance: Distance = "cosine"
    kind: Literal["dense", "sparse"] = "dense"


@dataclass(frozen=True)
class SparseVec:
    """A sparse vector: ascending unique ``indices`` (uint32) and their ``values``."""

    indices: tuple[int, ...]
    values: tuple[float, ...]


VectorValue = Sequence[float] | SparseVec


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    vectors: Mapping[str, VectorSpec]
    payload_indexes: Mapping[str, PayloadType] = field(default_factory=dict)


@dataclass(frozen=True)
class Point:
    id: str
    vectors: Mapping[str, VectorValue]
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]
    vectors: dict[str, list[float]] | None = None


@dataclass(frozen=True)
class PayloadFilter:
    """Conjunction of conditions: ``equals`` (a value, or any of a list), numeric ``ranges``
    (inclusive, either bound optional) and ``excludes`` (none of the values).

    Flags are stored as integers 0/1, not booleans: Qdrant Edge 0.9's Python bindings turn a
    boolean match value into an integer, which never matches a boolean payload.
    """

    equals: Mapping[str, Scalar | Sequence[Scalar]] = field(default_factory=dict)
    ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    excludes: Mapping[str, Sequence[Scalar]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, value in [*self.equals.items(), *self.excludes.items()]:
            values = value if isinstance(value, (list, tuple)) else [value]
            if any(isinstance(v, bool) for v in values):
                raise InvalidInputError(f"filter on {key!r}: store flags as 0/1, not booleans")

    def is_empty(self) -> bool:
        return not (self.equals or self.ranges or self.excludes)


class VectorIndex(ABC):
    """What ingest and the recommender need from a vector index."""

    @abstractmethod
    def ensure_collection(self, spec: CollectionSpec) -> None:
        """Create the collection (and payload indexes) unless it exists."""

    @abstractmethod
    def collections(self) -> list[str]: ...

    @abstractmethod
    def drop_collection(self, name: str) -> None: ...

    @abstractmethod
    def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` atomically."""

    @abstractmethod
    def resolve(self, name: str) -> str:
        """The collection an alias points to (or ``name`` itself if it is a collection)."""

    @abstractmethod
    def upsert(self, collection: str, points: Sequence[Point]) -> None: ...

    @abstractmethod
    def delete(self, collection: str, ids: Sequence[str]) -> None: ...

    @abstractmethod
    def delete_where(self, collection: str, where: PayloadFilter) -> None: ...

    @abstractmethod
    def set_payload(
        self, collection: str, where: PayloadFilter, payload: Mapping[str, Any]
    ) -> None:
        """Merge ``payload`` into every point matching ``where`` (e.g. ``active=False``)."""

    @abstractmethod
    def search(
        self,
        collection: str,
        vector_name: str,
        vector: VectorValue,
        *,
        limit: int,
        where: PayloadFilter | None = None,
        with_vectors: bool | Sequence[str] = False,
        hnsw_ef: int | None = None,
    ) -> list[Hit]:
        """The ``limit`` nearest points; ``with_vectors``: all of their vectors, or the named
        ones; ``hnsw_ef`` widens the HNSW beam (recall for speed)."""

    @abstractmethod
    def recommend(
        self,
        collection: str,
        vector_name: str,
        positives: Sequence[Sequence[float]],
        negatives: Sequence[Sequence[float]] = (),
        *,
        limit: int,
        where: PayloadFilter | None = None,
        strategy: Strategy = "best_score",
        with_vectors: bool | Sequence[str] = False,
    ) -> list[Hit]:
        """The ``limit`` best points for Qdrant's recommend query: dense ``positives`` to come
        near, ``negatives`` to keep away (:data:`Strategy`); best first."""

    @abstractmethod
    def retrieve(
        self, collection: str, ids: Sequence[str], *, with_vectors: bool = False
    ) -> list[Hit]: ...

    @abstractmethod
    def count(self, collection: str, where: PayloadFilter | None = None) -> int: ...

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Persist recent writes (engines with a write-ahead log need it only on a timer)."""

    def optimize(self, collection: str) -> bool:
        """Build the search structures for the points written so far; True if there was work.
        The Qdrant server does this by itself in the background."""
        return False

    def maintain(self, min_points: int = 5000) -> list[str]:
        """Optimise the open collections where at least ``min_points`` wait (the embedded
        engine's owner calls this on a timer); the collections optimised."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files or connections."""


def _float_list(vector: Sequence[float]) -> list[float]:
    """A list of Python floats, as Edge takes them (a no-op for one already: 2,600 floats a
    crop, so ingest does not convert twice)."""
    if isinstance(vector, list) and (not vector or type(vector[0]) is float):
        return vector
    return np.asarray(vector, dtype=np.float32).tolist()


# --- Qdrant server (qdrant-client) -------------------------------------------------------


class ClientIndex(VectorIndex):
    """A Qdrant server (or qdrant-client's local mode) through ``qdrant-client``."""

    def __init__(self, client: Any) -> None:
        from qdrant_client import models

        self._client = client
        self._m = models

    @classmethod
    def connect(cls, url: str, api_key: str | None = None, timeout_s: float = 10.0) -> ClientIndex:
        from qdrant_client import QdrantClient

        return cls(QdrantClient(url=url, api_key=api_key, timeout=int(timeout_s)))

    def _distance(self, distance: Distance) -> Any:
        return self._m.Distance.COSINE if distance == "cosine" else self._m.Distance.MANHATTAN

    def ensure_collection(self, spec: CollectionSpec) -> None:
        m = self._m
        if not self._client.collection_exists(spec.name):
            self._client.create_collection(
                spec.name,
                vectors_config={
                    name: m.VectorParams(size=v.size, distance=self._distance(v.distance))
                    for name, v in spec.vectors.items()
                    if v.kind == "dense"
                },
                sparse_vectors_config={
                    name: m.SparseVectorParams(modifier=m.Modifier.IDF)
                    for name, v in spec.vectors.items()
                    if v.kind == "sparse"
                }
                or None,
            )
        schema = {
            "keyword": m.PayloadSchemaType.KEYWORD,
            "integer": m.PayloadSchemaType.INTEGER,
            "float": m.PayloadSchemaType.FLOAT,
        }
        for field_name, kind in spec.payload_indexes.items():
            self._client.create_payload_index(spec.name, field_name, field_schema=schema[kind])

    def collections(self) -> list[str]:
        return sorted(c.name for c in self._client.get_collections().collections)

    def drop_collection(self, name: str) -> None:
        self._client.delete_collection(name)

    def set_alias(self, alias: str, collection: str) -> None:
        m = self._m
        operations: list[Any] = []
        if any(a.alias_name == alias for a in self._client.get_aliases().aliases):
            operations.append(m.DeleteAliasOperation(delete_alias=m.DeleteAlias(alias_name=alias)))
        operations.append(
            m.CreateAliasOperation(
                create_alias=m.CreateAlias(collection_name=collection, alias_name=alias)
            )
        )
        self._client.update_collection_aliases(change_aliases_operations=operations)

    def resolve(self, name: str) -> str:
        for alias in self._client.get_aliases().aliases:
            if alias.alias_name == name:
                return str(alias.collection_name)
        if self._client.collection_exists(name):
            return name
        raise NotFoundError(f"no collection or alias named {name!r}")

    def upsert(self, collection: str, points: Sequence[Point]) -> None:
        if not points:
            return
        structs = [
            self._m.PointStruct(
                id=p.id,
                vector={k: self._vector(v) for k, v in p.vectors.items()},
                payload=dict(p.payload),
            )
            for p in points
        ]
        self._client.upsert(collection, points=structs, wait=True)

    def _vector(self, vector: VectorValue) -> Any:
        if isinstance(vector, SparseVec):
            return self._m.SparseVector(indices=list(vector.indices), values=list(vector.values))
        return _float_list(vector)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        if ids:
            selector = self._m.PointIdsList(points=list(ids))
            self._client.delete(collection, points_selector=selector, wait=True)

    def delete_where(self, collection: str, where: PayloadFilter) -> None:
        selector = self._m.FilterSelector(filter=self._filter(where))
        self._client.delete(collection, points_selector=selector, wait=True)

    def set_payload(
        self, collection: str, where: PayloadFilter, payload: Mapping[str, Any]
    ) -> None:
        self._client.set_payload(
            collection, payload=dict(payload), points=self._filter(where), wait=True
        )

    def _filter(self, where: PayloadFilter | None) -> Any:
        if where is None or where.is_empty():
            return None
        m = self._m
        must: list[Any] = []
        for key, value in where.equals.items():
            if isinstance(value, (list, tuple)):
                must.append(m.FieldCondition(key=key, match=m.MatchAny(any=list(value))))
            else:
                must.append(m.FieldCondition(key=key, match=m.MatchValue(value=value)))
        for key, (low, high) in where.ranges.items():
            must.append(m.FieldCondition(key=key, range=m.Range(gte=low, lte=high)))
        must_not = [
            m.FieldCondition(key=key, match=m.MatchAny(any=list(values)))
            for key, values in where.excludes.items()
            if values
        ]
        return m.Filter(must=must or None, must_not=must_not or None)

    def search(
        self,
        collection: str,
        vector_name: str,
        vector: VectorValue,
        *,
        limit: int,
        where: PayloadFilter | None = None,
        with_vectors: bool | Sequence[str] = False,
        hnsw_ef: int | None = None,
    ) -> list[Hit]:
        response = self._client.query_points(
            collection,
            query=self._vector(vector),
            using=vector_name,
            query_filter=self._filter(where),
            search_params=None if hnsw_ef is None else self._m.SearchParams(hnsw_ef=hnsw_ef),
            limit=limit,
            with_payload=True,
            with_vectors=_vector_names(with_vectors),
        )
        return [_hit(p) for p in response.points]

    def recommend(
        self,
        collection: str,
        vector_name: str,
        positives: Sequence[Sequence[float]],
        negatives: Sequence[Sequence[float]] = (),
        *,
        limit: int,
        where: PayloadFilter | None = None,
        strategy: Strategy = "best_score",
        with_vectors: bool | Sequence[str] = False,
    ) -> list[Hit]:
        m = self._m
        strategies = {
            "best_score": m.RecommendStrategy.BEST_SCORE,
            "sum_scores": m.RecommendStrategy.SUM_SCORES,
        }
        response = self._client.query_points(
            collection,
            query=m.RecommendQuery(
                recommend=m.RecommendInput(
                    positive=[_float_list(v) for v in positives],
                    negative=[_float_list(v) for v in negatives] or None,
                    strategy=strategies[strategy],
                )
            ),
            using=vector_name,
            query_filter=self._filter(where),
            limit=limit,
            with_payload=True,
            with_vectors=_vector_names(with_vectors),
        )
        return [_hit(p) for p in response.points]

    def retrieve(
        self, collection: str, ids: Sequence[str], *, with_vectors: bool = False
    ) -> list[Hit]:
        records = self._client.retrieve(
            collection, ids=list(ids), with_payload=True, with_vectors=with_vectors
        )
        return [_hit(r) for r in records]

    def count(self, collection: str, where: PayloadFilter | None = None) -> int:
        return int(
            self._client.count(collection, count_filter=self._filter(where), exact=True).count
        )

    def close(self) -> None:
        self._client.close()


def best_score_similarity(score: float) -> float:
    """The similarity behind a ``best_score`` recommend score: Qdrant scales a point's best
    similarity ``x`` to a positive example as ``(x / (1 + |x|) + 1) / 2`` (so 1.0 scores 0.75)
    and gives a point nearer a negative example minus the scaled similarity to it. That one's
    similarity to its nearest positive, or 0 for a point pushed away."""
    if score <= 0.0:
        return 0.0
    y = min(2.0 * score - 1.0, 0.999_999)
    return min(1.0, max(0.0, y / (1.0 - abs(y))))


def _vector_names(with_vectors: bool | Sequence[str]) -> bool | list[str]:
    return with_vectors if isinstance(with_vectors, bool) else list(with_vectors)


def _hit(point: Any) -> Hit:
    """A scored point or record of either engine (same attribute names) as a :class:`Hit`;
    sparse vectors are not returned."""
    vectors = point.vector if isinstance(point.vector, dict) else {}
    dense = {k: list(v) for k, v in vectors.items() if not hasattr(v, "indices")}
    return Hit(
        id=str(point.id),
        score=float(getattr(point, "score", 0.0) or 0.0),
        payload=dict(point.payload or {}),
        vectors=dense or None,
    )


# --- Qdrant Edge (embedded) --------------------------------------------------------------


class IndexHeldError(ConfigurationError):
    """Another process holds the embedded index; ``holder`` says which, when it said so."""

    def __init__(self, root: Path, holder: index_holder.Holder | None) -> None:
        by = holder.describe() if holder else "another process"
        super().__init__(
            f"the embedded vector index at {root} is open in another process: {by}; in "
            "embedded mode run the services in one process (`lookalike run`) or set QDRANT_URL"
        )
        self.root = root
        self.holder = holder


class EdgeIndex(VectorIndex):
    """Qdrant's engine in this process: one Edge shard directory per collection, aliases in a
    small JSON file. One process owns the directory (a file lock says so clearly)."""

    def __init__(
        self, root: Path, *, wait_s: float = 0.0, role: str | None = None, url: str | None = None
    ) -> None:
        """``wait_s``: how long to wait for a process that holds the directory to let it go
        (a short-lived command, e.g. ``lookalike sweep --once``) before giving up. ``role`` and
        ``url`` go into the holder record (:mod:`shared.index_holder`)."""
        import qdrant_edge

        self._e = qdrant_edge
        self.root = root
        (root / "collections").mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._shards: dict[str, Any] = {}
        self._rescore = qdrant_edge.QuantizationSearchParams(rescore=True, oversampling=2.0)
        self._lockfile: IO[str] | None = (root / ".lock").open("w")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                self._lockfile.close()
                self._lockfile = None
                raise IndexHeldError(root, index_holder.read(root)) from exc
        self.holder = index_holder.Holder.this_process(role, url)
        index_holder.write(root, self.holder)

    def turned_away(self) -> index_holder.Holder | None:
        """The last process that gave up on this index since this one opened it."""
        return index_holder.turned_away(self.root, self.holder.since)

    def _shard_dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ConfigurationError(f"invalid collection name {name!r}")
        return self.root / "collections" / name

    def _spec_file(self, name: str) -> Path:
        return self._shard_dir(name) / "lookalike-collection.json"

    def _shard(self, name: str) -> Any:
        name = self.resolve(name)
        with self._lock:
            shard = self._shards.get(name)
            if shard is None:
                # Loading with the storage config also converts a shard made by an older
                # version (with a graph, no quantization) at its next optimisation.
                description = json.loads(self._spec_file(name).read_text())
                vectors = {k: VectorSpec(**v) for k, v in description["vectors"].items()}
                shard = self._e.EdgeShard.load(str(self._shard_dir(name)), self._config(vectors))
                self._shards[name] = shard
            return shard

    def _distance(self, distance: Distance) -> Any:
        return self._e.Distance.Cosine if distance == "cosine" else self._e.Distance.Manhattan

    def _config(self, vectors: Mapping[str, VectorSpec]) -> Any:
        """Named vectors, no HNSW graph (``m=0``), int8 scalar quantization kept in RAM."""
        e = self._e
        return e.EdgeConfig(
            vectors={
                name: e.EdgeVectorParams(size=v.size, distance=self._distance(v.distance))
                for name, v in vectors.items()
                if v.kind == "dense"
            },
            sparse_vectors={
                name: e.EdgeSparseVectorParams(modifier=e.Modifier.Idf)
                for name, v in vectors.items()
                if v.kind == "sparse"
            }
            or None,
            hnsw_config=e.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000),
            quantization_config=e.ScalarQuantizationConfig(e.ScalarType.Int8, always_ram=True),
            # maintain() decides when to optimise; a segment of 1 MB is then worth quantizing.
            optimizers=e.EdgeOptimizersConfig(indexing_threshold=1000),
        )

    def ensure_collection(self, spec: CollectionSpec) -> None:
        e = self._e
        with self._lock:
            directory = self._shard_dir(spec.name)
            if self._spec_file(spec.name).is_file():
                return
            directory.mkdir(parents=True, exist_ok=True)
            shard = e.EdgeShard.create(str(directory), self._config(spec.vectors))
            schema = {
                "keyword": e.PayloadSchemaType.Keyword,
                "integer": e.PayloadSchemaType.Integer,
                "float": e.PayloadSchemaType.Float,
            }
            for field_name, kind in spec.payload_indexes.items():
                shard.update(e.UpdateOperation.create_field_index(field_name, schema[kind]))
            shard.flush()
            self._shards[spec.name] = shard
            description = {
                "vectors": {
                    k: {"size": v.size, "distance": v.distance, "kind": v.kind}
                    for k, v in spec.vectors.items()
                },
                "payload_indexes": dict(spec.payload_indexes),
            }
            self._spec_file(spec.name).write_text(json.dumps(description))

    def collections(self) -> list[str]:
        base = self.root / "collections"
        return sorted(p.name for p in base.iterdir() if (p / "lookalike-collection.json").is_file())

    def drop_collection(self, name: str) -> None:
        import shutil

        with self._lock:
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.close()
            aliases = {k: v for k, v in self._aliases().items() if v != name}
            self._write_aliases(aliases)
            shutil.rmtree(self._shard_dir(name), ignore_errors=True)

    def _aliases(self) -> dict[str, str]:
        path = self.root / "aliases.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def _write_aliases(self, aliases: dict[str, str]) -> None:
        path = self.root / "aliases.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(aliases, sort_keys=True))
        tmp.replace(path)

    def set_alias(self, alias: str, collection: str) -> None:
        with self._lock:
            if collection not in self.collections():
                raise NotFoundError(f"no collection named {collection!r}")
            self._write_aliases({**self._aliases(), alias: collection})

    def resolve(self, name: str) -> str:
        with self._lock:
            target = self._aliases().get(name, name)
            if not self._spec_file(target).is_file():
                raise NotFoundError(f"no collection or alias named {name!r}")
            return target

    def _filter(self, where: PayloadFilter | None) -> Any:
        if where is None or where.is_empty():
            return None
        e = self._e
        must: list[Any] = []
        for key, value in where.equals.items():
            if isinstance(value, (list, tuple)):
                must.append(e.FieldCondition(key=key, match=e.MatchAny(list(value))))
            else:
                must.append(e.FieldCondition(key=key, match=e.MatchValue(value)))
        for key, (low, high) in where.ranges.items():
            must.append(e.FieldCondition(key=key, range=e.RangeFloat(gte=low, lte=high)))
        must_not = [
            e.FieldCondition(key=key, match=e.MatchAny(list(values)))
            for key, values in where.excludes.items()
            if values
        ]
        return e.Filter(must=must or None, must_not=must_not or None)

    def upsert(self, collection: str, points: Sequence[Point]) -> None:
        if not points:
            return
        e = self._e
        edge_points = [
            e.Point(
                id=p.id,
                vector={k: self._vector(v) for k, v in p.vectors.items()},
                payload=dict(p.payload),
            )
            for p in points
        ]
        with self._lock:
            shard = self._shard(collection)
            shard.update(e.UpdateOperation.upsert_points(edge_points))

    def _vector(self, vector: VectorValue) -> Any:
        if isinstance(vector, SparseVec):
            return self._e.SparseVector(list(vector.indices), list(vector.values))
        return _float_list(vector)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        if ids:
            with self._lock:
                shard = self._shard(collection)
                shard.update(self._e.UpdateOperation.delete_points(list(ids)))

    def delete_where(self, collection: str, where: PayloadFilter) -> None:
        with self._lock:
            shard = self._shard(collection)
            shard.update(self._e.UpdateOperation.delete_points_by_filter(self._filter(where)))

    def set_payload(
        self, collection: str, where: PayloadFilter, payload: Mapping[str, Any]
    ) -> None:
        with self._lock:
            shard = self._shard(collection)
            shard.update(
                self._e.UpdateOperation.set_payload_by_filter(self._filter(where), dict(payload))
            )

    def search(
        self,
        collection: str,
        vector_name: str,
        vector: VectorValue,
        *,
        limit: int,
        where: PayloadFilter | None = None,
        with_vectors: bool | Sequence[str] = False,
        hnsw_ef: int | None = None,
    ) -> list[Hit]:
        e = self._e
        request = e.QueryRequest(
            limit=limit,
            query=e.Query.Nearest(self._vector(vector), using=vector_name),
            filter=self._filter(where),
            with_payload=True,
            with_vector=_vector_names(with_vectors),
            params=e.SearchParams(hnsw_ef=hnsw_ef, quantization=self._rescore),
        )
        return [_hit(p) for p in self._shard(collection).query(request)]

    def recommend(
        self,
        collection: str,
        vector_name: str,
        positives: Sequence[Sequence[float]],
        negatives: Sequence[Sequence[float]] = (),
        *,
        limit: int,
        where: PayloadFilter | None = None,
        strategy: Strategy = "best_score",
        with_vectors: bool | Sequence[str] = False,
    ) -> list[Hit]:
        """Edge 0.9 has Qdrant's recommend query with vectors (not point ids) as examples;
        the int8 scan is rescored on the float vectors, as :meth:`search`'s."""
        e = self._e
        examples = e.RecommendQuery(
            [_float_list(v) for v in positives], [_float_list(v) for v in negatives]
        )
        make = (
            e.Query.RecommendBestScore if strategy == "best_score" else e.Query.RecommendSumScores
        )
        request = e.QueryRequest(
            limit=limit,
            query=make(examples, using=vector_name),
            filter=self._filter(where),
            with_payload=True,
            with_vector=_vector_names(with_vectors),
            params=e.SearchParams(quantization=self._rescore),
        )
        return [_hit(p) for p in self._shard(collection).query(request)]

    def retrieve(
        self, collection: str, ids: Sequence[str], *, with_vectors: bool = False
    ) -> list[Hit]:
        records = self._shard(collection).retrieve(
            list(ids), with_payload=True, with_vector=with_vectors
        )
        return [_hit(r) for r in records]

    def count(self, collection: str, where: PayloadFilter | None = None) -> int:
        return int(
            self._shard(collection).count(
                self._e.CountRequest(exact=True, filter=self._filter(where))
            )
        )

    def optimize(self, collection: str) -> bool:
        """Quantize and merge the points written since the last run. Holds the GIL (Edge 0.9)
        for ~12 us per point of the collection: 1.2 s at 100,000 points."""
        with self._lock:
            return bool(self._shard(collection).optimize())

    def unindexed(self, collection: str) -> int:
        """Points not yet quantized (scanned as floats until the next optimisation)."""
        name = self.resolve(collection)
        description = json.loads(self._spec_file(name).read_text())
        dense = [v for v in description["vectors"].values() if v.get("kind", "dense") == "dense"]
        info = self._shard(name).info()
        return int(info.points_count - info.indexed_vectors_count // max(1, len(dense)))

    def maintain(self, min_points: int = 5000) -> list[str]:
        with self._lock:
            names = list(self._shards)
        done = []
        for name in names:
            if self.unindexed(name) >= min_points:
                started = time.perf_counter()
                self.optimize(name)
                log.info("optimised %s in %.1f s", name, time.perf_counter() - started)
                done.append(name)
        return done

    def flush(self) -> None:
        """Write segments of every open shard to disk. Updates are already durable in Edge's
        write-ahead log (a SIGKILLed process loses nothing), so writers do not flush each time:
        a flush holds the GIL for 60-250 ms here and cut ingest to 68% of bare throughput.
        The owning process flushes on a timer and on close."""
        with self._lock:
            for shard in self._shards.values():
                shard.flush()

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.flush()
                shard.close()
            self._shards.clear()
            if self._lockfile is not None:
                index_holder.clear(self.root, self.holder)
                fcntl.flock(self._lockfile, fcntl.LOCK_UN)
                self._lockfile.close()
                self._lockfile = None


def open_index(
    qdrant_url: str | None,
    qdrant_path: Path | None,
    api_key: str | None = None,
    *,
    wait_s: float = 0.0,
    role: str | None = None,
    url: str | None = None,
) -> VectorIndex:
    """The configured engine: a Qdrant server when ``QDRANT_URL`` is set, else Edge on disk
    (waiting up to ``wait_s`` for another process to let it go; ``role`` and ``url`` name this
    process in the holder record)."""
    if qdrant_url:
        return ClientIndex.connect(qdrant_url, api_key)
    if qdrant_path is None:
        raise ConfigurationError("set QDRANT_URL or a data dir for the embedded index")
    return EdgeIndex(qdrant_path, wait_s=wait_s, role=role, url=url)
