"""Rows written to disk as they are read, so that a reader's memory does not grow with its file.

A reader that would otherwise build a large pandas frame (the long values of an INSEE base: one
row per territory x variable, about 20 times the size of the file once in pandas) appends its
rows to a :class:`SpillWriter`, one by one (tuples) or by blocks (numpy arrays, one per
column, for a reader that works column by column). Up to :data:`BATCH_ROWS` rows it keeps them
in Python (a small file costs no database); beyond, it writes them by batches to Parquet files
(Arrow, each batch sorted by the order keys) in a temporary folder. :meth:`SpillWriter.finish`
sorts the rows by
the order keys the reader gave (so the result is the same, row for row, as the frame it
replaces: one batch already is; several are merged by DuckDB, whose memory is capped,
:data:`SPILL_MEMORY`, the rest written to disk) and returns a :class:`SpilledTable`: a pandas
frame for a small file, Parquet files otherwise. SQL over the spilled rows
(:meth:`SpillWriter.cursor`) reads them as the view ``rows``.

The raw-table writers (:mod:`pipelines.lib.raw_schemas`) insert a :class:`SpilledTable` part by
part, a Parquet file straight from disk; :meth:`SpilledTable.to_pandas` gives the whole frame
(for the tests and small files). The temporary folder is removed with the last object using it.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: Memory DuckDB may use for the rows being spilled (the rest goes to disk).
SPILL_MEMORY = "128MB"
#: Rows kept in Python before they go to the spill database (by batches of this size).
BATCH_ROWS = 50_000


def sql_string(text: str) -> str:
    """A SQL string literal (quotes doubled) for places that take no bound parameter."""
    return "'" + str(text).replace("'", "''") + "'"


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return sql_string(str(value))


_PANDAS_TYPES = {"INTEGER": "int32", "BIGINT": "int64", "BOOLEAN": bool}
_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
}


class _Folder:
    """A temporary folder removed when no object refers to it any more."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="observatoire-lecture-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)


class SpillWriter:
    """Rows of fixed columns (name -> DuckDB type: VARCHAR, BIGINT, INTEGER, DOUBLE, BOOLEAN),
    kept in Python while few, then written by batches to temporary Parquet files; ``order`` are
    extra integer columns the rows are sorted by at :meth:`finish` (not part of the result)."""

    def __init__(self, columns: Sequence[tuple[str, str]], order: Sequence[str] = ()) -> None:
        self.types = dict(columns)
        self.columns = [name for name, _ in columns]
        self.order = list(order)
        self.names = [*self.columns, *self.order]
        unknown = sorted({t for t in self.types.values() if t not in _ARROW_TYPES})
        if unknown:
            raise ValueError(f"types non pris en charge par SpillWriter : {unknown}")
        self._schema = pa.schema(
            [(n, _ARROW_TYPES[self.types.get(n, "BIGINT")]) for n in self.names]
        )
        self._files: list[Path] = []  # the batches written, each sorted by the order keys
        self._pending: list[tuple] = []
        self._blocks: list[dict[str, np.ndarray]] = []  # rows appended by columns, before _pending
        self._block_rows = 0
        self._count = 0
        self._folder: _Folder | None = None
        self._con: duckdb.DuckDBPyConnection | None = None

    @property
    def spilled(self) -> bool:
        """Whether rows went to disk (else they are all in Python: :attr:`pending`)."""
        return bool(self._files)

    @property
    def pending(self) -> list[tuple]:
        """The rows kept in Python (appended one by one: :meth:`append`)."""
        return self._pending

    def append(self, row: tuple) -> None:
        """One row: every column then every order key, in the order given at creation."""
        self._pending.append(row)
        if len(self._pending) + self._block_rows >= BATCH_ROWS:
            self.flush()

    def append_columns(self, columns: dict[str, np.ndarray]) -> None:
        """Rows given column by column: a numpy array (all of the same length) for every name of
        :meth:`append`'s tuples, converted to the declared types with the rest."""
        count = len(columns[self.names[0]])
        if not count:
            return
        if self._pending:  # the rows keep the order they were appended in
            self._blocks.append(self._pending_columns())
            self._block_rows += len(self._pending)
            self._pending = []
        self._blocks.append({name: columns[name] for name in self.names})
        self._block_rows += count
        if self._block_rows >= BATCH_ROWS:
            self.flush()

    def _open(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection reading the batches (view ``rows``), memory capped."""
        if self._con is None:
            folder = self._workdir()
            con = duckdb.connect()
            con.execute(f"SET memory_limit = '{SPILL_MEMORY}'")
            con.execute("SET threads = 1")
            con.execute("SET preserve_insertion_order = false")  # the order is an ORDER BY
            con.execute(f"SET temp_directory = {sql_string(str(folder.path / 'tmp'))}")
            self._con = con
        if self._files:
            self._con.execute(f"CREATE OR REPLACE VIEW rows AS SELECT * FROM {self._scan()}")
        else:
            ddl = ", ".join(f'"{f.name}" {_duckdb_type(f.type)}' for f in self._schema)
            self._con.execute(f"CREATE OR REPLACE TABLE rows ({ddl})")
        return self._con

    def _workdir(self) -> _Folder:
        if self._folder is None:
            self._folder = _Folder()
        return self._folder

    def _scan(self) -> str:
        files = ", ".join(sql_string(str(f)) for f in self._files)
        return f"read_parquet([{files}])"

    def flush(self) -> None:
        """Write the rows kept in Python to disk: one Parquet file, sorted by the order keys."""
        n = len(self._pending) + self._block_rows
        if not n:
            return
        if self._blocks:
            arrays = self._columns()
        else:
            frame = self._frame()
            arrays = {name: frame[name].to_numpy() for name in self.names}
        if self.order:
            index = np.lexsort([np.asarray(arrays[k]) for k in reversed(self.order)])
            arrays = {name: array[index] for name, array in arrays.items()}
        table = pa.table(
            [
                pa.array(arrays[f.name], type=f.type, from_pandas=True)  # NaN: null, as in SQL
                for f in self._schema
            ],
            schema=self._schema,
        )
        del arrays
        target = self._workdir().path / f"lot-{len(self._files):06d}.parquet"
        pq.write_table(table, target)
        self._files.append(target)
        self._count += n
        self._forget()

    def _forget(self) -> None:
        self._pending = []
        self._blocks = []
        self._block_rows = 0

    def _records(self) -> pd.DataFrame:
        return pd.DataFrame.from_records(self._pending, columns=self.names)

    def _pending_columns(self) -> dict[str, np.ndarray]:
        frame = self._records()
        return {name: frame[name].to_numpy() for name in self.names}

    def _columns(self) -> dict[str, np.ndarray]:
        """Every row kept in Python, column by column (appended by columns, then one by one)."""
        blocks = [*self._blocks, self._pending_columns()] if self._pending else self._blocks
        if len(blocks) == 1:
            return blocks[0]
        return {name: np.concatenate([b[name] for b in blocks]) for name in self.names}

    def _frame(self, names: Sequence[str] | None = None, index=None) -> pd.DataFrame:
        """The rows kept in Python as a pandas frame of the declared types: the columns
        ``names`` (default: all), the rows taken in the order ``index`` (blocks only)."""
        names = list(names or self.names)
        if self._blocks:
            arrays = self._columns()
            frame = pd.DataFrame(
                {n: arrays[n] if index is None else arrays[n][index] for n in names},
                columns=names,
            )
        else:
            frame = self._records()[names]
        for name in names:
            kind = self.types.get(name, "BIGINT")
            if len(frame) and kind in _PANDAS_TYPES and frame[name].notna().all():
                frame[name] = frame[name].astype(_PANDAS_TYPES[kind])
            elif kind == "DOUBLE":
                frame[name] = frame[name].astype("float64")
            elif kind == "VARCHAR" and frame[name].dtype != object:
                frame[name] = frame[name].astype(object)
        return frame

    def __len__(self) -> int:
        return self._count + len(self._pending) + self._block_rows

    def cursor(self, sql: str, params: Sequence[Any] = ()) -> duckdb.DuckDBPyConnection:
        """Run ``sql`` on the spilled rows (every row moved to disk first, view ``rows``);
        fetch the result by parts."""
        self.flush()
        return self._open().execute(sql, list(params))

    def distinct(self, columns: Sequence[str]) -> pd.DataFrame:
        """The distinct values of some columns, sorted."""
        if not self.spilled:
            frame = self._frame()[list(columns)].drop_duplicates()
        else:
            names = ", ".join(f'"{c}"' for c in columns)
            frame = self.cursor(f"SELECT DISTINCT {names} FROM rows").df()
        return frame.sort_values(list(columns)).reset_index(drop=True)

    def finish(
        self,
        output: Sequence[str] | None = None,
        constants: dict[str, Any] | None = None,
        mapped: tuple[str, str, dict[str, str]] | None = None,
    ) -> SpilledTable:
        """The rows sorted by the order keys: the columns ``output`` (default: those written),
        where ``constants`` gives some a single value and ``mapped`` = (column, from, mapping)
        computes one as ``mapping[from]``, its written value when absent."""
        output = list(output or self.columns)
        constants = constants or {}
        if not self.spilled and self._blocks:  # sorted with numpy, only the columns needed
            arrays = self._columns()
            keys = [np.asarray(arrays[k]) for k in reversed(self.order)]
            needed = {*output, *([mapped[1]] if mapped else [])}
            frame = self._frame(
                [n for n in self.names if n in needed], np.lexsort(keys) if keys else None
            )
        elif not self.spilled:
            frame = self._frame()
            if self.order and len(frame):
                frame = frame.sort_values(self.order, kind="stable").reset_index(drop=True)
        if not self.spilled:
            if mapped is not None:
                column, source, mapping = mapped
                if mapping:
                    frame[column] = frame[source].map(mapping).fillna(frame[column])
            for name, value in constants.items():
                frame[name] = value
            frame = frame[output]
            self._forget()
            return SpilledTable([Part(frame)], output, len(frame))
        # constants and the mapped column are applied when the Parquet file is read (a constant
        # in the sorted SELECT makes DuckDB's sort run out of its memory limit)
        self.flush()
        assert self._folder is not None
        folder = self._folder
        count = self._count
        if len(self._files) == 1 or not self.order:
            results = list(self._files)  # sorted already, or in the order written
        else:  # several sorted batches: merged
            con = self._open()
            columns = ", ".join(f'"{n}"' for n in output if n in self.types)
            keys = ", ".join(f'"{n}"' for n in self.order)
            target = folder.path / "lignes.parquet"
            con.execute(
                f"COPY (SELECT {columns} FROM rows ORDER BY {keys}) "
                f"TO {sql_string(str(target))} (FORMAT parquet)"
            )
            results = [target]
        self.close(keep=results)
        parts = [Part(f, constants, mapped if mapped and mapped[2] else None) for f in results]
        return SpilledTable(parts, output, count, [folder])

    def close(self, keep: Sequence[Path] = ()) -> None:
        """Forget the rows (and delete the batches on disk but those in ``keep``: the result)."""
        self._forget()
        if self._con is not None:
            self._con.close()
            self._con = None
        for path in self._files:
            if path not in keep:
                path.unlink(missing_ok=True)
        self._files = []


def _duckdb_type(arrow: pa.DataType) -> str:
    return next(name for name, t in _ARROW_TYPES.items() if t == arrow)


class Part:
    """One part of a :class:`SpilledTable`: a Parquet file or a pandas frame, with columns set to
    one value (``constants``) and one column computed from another (``mapped`` = (column,
    from, mapping): ``mapping[from]``, else the column's own value), applied when it is read."""

    def __init__(
        self,
        data: Path | pd.DataFrame,
        constants: dict[str, Any] | None = None,
        mapped: tuple[str, str, dict[str, str]] | None = None,
    ) -> None:
        self.data = data
        self.constants = dict(constants or {})
        self.mapped = mapped

    def with_constants(self, constants: dict[str, Any]) -> Part:
        return Part(self.data, {**self.constants, **constants}, self.mapped)

    def batches(self, schema: pa.Schema, size: int = 100_000):
        """The part's rows as Arrow record batches of ``schema`` (its columns, in its order),
        constants and mapping applied: read by batches from a Parquet file."""
        if isinstance(self.data, pd.DataFrame):
            frame = self.frame_or_sql(schema.names)
            for start in range(0, len(frame), size):
                yield pa.RecordBatch.from_pandas(
                    frame.iloc[start : start + size],
                    schema=schema,
                    preserve_index=False,
                    nthreads=1,
                )
            return
        file = pq.ParquetFile(self.data)
        stored = [n for n in schema.names if n not in self.constants]
        for batch in file.iter_batches(batch_size=size, columns=stored):
            arrays = []
            for field in schema:
                if field.name in self.constants:
                    value = self.constants[field.name]
                    array = pa.array([value] * batch.num_rows, type=field.type)
                else:
                    array = batch.column(field.name).cast(field.type)
                    if self.mapped is not None and field.name == self.mapped[0]:
                        _, source, mapping = self.mapped
                        keys = pa.array(list(mapping), type=pa.string())
                        found = pc.take(
                            pa.array(list(mapping.values()), type=field.type),
                            pc.index_in(batch.column(source), value_set=keys),
                        )
                        array = pc.coalesce(found, array)
                arrays.append(array)
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    def frame_or_sql(self, columns: list[str]) -> pd.DataFrame | str:
        """A pandas frame, or a FROM item reading the Parquet file (path, constants and mapping
        quoted: no bound parameter needed), with ``columns`` in this order."""
        if isinstance(self.data, pd.DataFrame):
            frame = self.data
            if self.mapped is not None:
                column, source, mapping = self.mapped
                frame = frame.assign(**{column: frame[source].map(mapping).fillna(frame[column])})
            return frame.assign(**self.constants)[columns] if self.constants else frame[columns]
        exprs = []
        for name in columns:
            if name in self.constants:
                exprs.append(f'{_literal(self.constants[name])} AS "{name}"')
            elif self.mapped is not None and name == self.mapped[0]:
                _, source, mapping = self.mapped
                cases = " ".join(
                    f"WHEN {sql_string(k)} THEN {sql_string(v)}" for k, v in mapping.items()
                )
                exprs.append(f'CASE "{source}" {cases} ELSE "{name}" END AS "{name}"')
            else:
                exprs.append(f'"{name}"')
        return f"(SELECT {', '.join(exprs)} FROM read_parquet({sql_string(str(self.data))}))"


class SpilledTable:
    """Rows in parts (:class:`Part`), each a Parquet file on disk or a (small) pandas frame,
    one after the other, with their columns and count: what a raw-table writer inserts part by
    part."""

    def __init__(
        self, parts: list[Part], columns: list[str], count: int, keep: list[Any] | None = None
    ) -> None:
        self.parts = parts
        self.columns = list(columns)
        self.count = count
        self._keep = keep or []  # the temporary folders, removed with the last reference
        self._frame: pd.DataFrame | None = None

    def __len__(self) -> int:
        return self.count

    @property
    def empty(self) -> bool:
        return self.count == 0

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def assign(self, **constants: Any) -> SpilledTable:
        """The same rows with some columns set to one value (``source`` of a shared table)."""
        return SpilledTable(
            [p.with_constants(constants) for p in self.parts],
            [*self.columns, *[c for c in constants if c not in self.columns]],
            self.count,
            self._keep,
        )

    def copy(self) -> SpilledTable:
        return self.assign()

    def frames_or_sql(self):
        """Each part: a pandas frame or a FROM item reading its Parquet file."""
        for part in self.parts:
            yield part.frame_or_sql(self.columns)

    def to_pandas(self) -> pd.DataFrame:
        """The rows as one pandas frame (for tests and small files: the memory the spill
        avoids)."""
        if self._frame is None:
            frames = []
            con = None
            try:
                for part in self.frames_or_sql():
                    if isinstance(part, pd.DataFrame):
                        frames.append(part)
                    else:
                        con = con or duckdb.connect()
                        frames.append(con.execute(f"SELECT * FROM {part}").df())
            finally:
                if con is not None:
                    con.close()
            frames = [f for f in frames if len(f)] or frames[:1]
            self._frame = (
                pd.concat(frames, ignore_index=True)
                if frames
                else pd.DataFrame(columns=self.columns)
            )
        return self._frame

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.__dict__.get("columns", ()):
            raise AttributeError(name)
        return self.to_pandas()[name]

    def __getitem__(self, name: str) -> Any:
        return self.to_pandas()[name]

    @staticmethod
    def one_file(tables: list[SpilledTable], types: dict[str, str]) -> SpilledTable:
        """Several spilled tables of the same columns (``types``: their DuckDB types), one after
        the other, as a single Parquet file written by Arrow batches (memory: one batch): a
        raw-table writer inserts it in one statement, where a part per file would cost a
        statement each (DuckDB's cost of an ``INSERT`` grows with their number)."""
        columns = tables[0].columns
        schema = pa.schema([(n, _ARROW_TYPES[types[n]]) for n in columns])
        folder = _Folder()
        target = folder.path / "lignes.parquet"
        with pq.ParquetWriter(target, schema) as writer:
            for table in tables:
                for part in table.parts:
                    for batch in part.batches(schema):
                        writer.write_batch(batch)
        return SpilledTable([Part(target)], columns, sum(t.count for t in tables), [folder])

    @staticmethod
    def union(tables: list[SpilledTable]) -> SpilledTable:
        """Several spilled tables of the same columns, one after the other."""
        return SpilledTable(
            [p for t in tables for p in t.parts],
            tables[0].columns,
            sum(t.count for t in tables),
            [k for t in tables for k in t._keep],
        )
