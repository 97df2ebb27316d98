# cython: language_level=3, boundscheck=False, wraparound=False
"""The drive loop's one per-chunk step compiled: a hand-over's chunks cut into runs and flights (issue 21).

Why: :func:`mailstudy.offline.analyze._feed_runs` groups every hand-over's ``(direction, t, data)`` chunks
into the runs the parsers take (``ParserBase.feed_runs``) and the flights the metrics count, with
``itertools.groupby``, three ``map`` calls and a ``sum`` per run: on the bench capture a few hundred thousand
runs, a tenth of a second or more of Python. :func:`runs_and_flights` makes the same lists in one C loop.
Exactly the reference's: the same comparisons (``==`` on the direction, as ``groupby``; ``>`` on the times,
as ``max``), the same objects (the chunks' own bytes and times, ``Flight`` tuples of four fields made with
``tuple.__new__``). tests/test_compiled_walk.py compares the whole analysis with the pure path.
"""

from cpython.list cimport PyList_Append

cdef object _new_tuple = tuple.__new__


def runs_and_flights(chunks, flight_type):
    """``(runs, flights)`` of ``chunks``: the runs ``(direction, datas, ts)`` one way each, in order, and one
    ``flight_type`` ``(direction, bytes, first t, latest t)`` per run (what ``_feed_runs`` makes)."""
    cdef list items = chunks if type(chunks) is list else list(chunks)
    cdef list runs = [], flights = [], datas, ts
    cdef Py_ssize_t i = 0, n = len(items), total
    cdef tuple ch
    while i < n:
        ch = <tuple>items[i]
        direction = ch[0]
        t0 = mx = ch[1]
        datas = []
        ts = []
        total = 0
        while True:
            data = ch[2]
            t = ch[1]
            PyList_Append(datas, data)
            PyList_Append(ts, t)
            total += len(data)
            if t > mx:
                mx = t
            i += 1
            if i >= n:
                break
            ch = <tuple>items[i]
            if not (direction == ch[0]):
                break
        PyList_Append(runs, (direction, datas, ts))
        PyList_Append(flights, _new_tuple(flight_type, (direction, total, t0, mx)))
    return runs, flights
