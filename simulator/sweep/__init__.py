"""Research sweeps: parameter grids over simulated swarms.

```python
from nhipl.simulator.sweep import load_config, run_sweep, LocalExecutor
config = load_config("examples/sweeps/revocation/sweep.toml")
result = run_sweep(config, "out/", LocalExecutor())
```

See ``docs/research.md``.
"""

from .config import ConfigError, PlotSpec, SweepConfig, load_config, parse_config
from .executors import DaskExecutor, ExecutorError, LocalExecutor, RunFailed
from .plan import RunSpec, columns, plan
from .run import SweepResult, execute, run_sweep
from .studies import STUDIES, is_measured
from .table import read_results

__all__ = [
    "ConfigError", "PlotSpec", "SweepConfig", "load_config", "parse_config",
    "DaskExecutor", "ExecutorError", "LocalExecutor", "RunFailed",
    "RunSpec", "columns", "plan", "SweepResult", "execute", "run_sweep",
    "STUDIES", "is_measured", "read_results",
]
