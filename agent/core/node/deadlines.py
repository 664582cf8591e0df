"""The Node's deadline tables: they live in core/deadlines.py (the negotiation cores
use them too, and must not import the Node's package); their names stay importable
from here."""

from fedorch.core.deadlines import DeadlineTable as DeadlineTable
from fedorch.core.deadlines import LazyHeap as LazyHeap
from fedorch.core.deadlines import _rebuilt_table as _rebuilt_table
