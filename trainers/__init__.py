"""Training for every proc-ml model family: one loop (``trainers.loop``), per-family tasks.

Public API::

    fit(config, data_dir, out_dir, resume=False)      train into a run folder
    load_train_config(task, path, overrides)          strict YAML + --set config
    load_run(run_dir, checkpoint="best")              -> (model on CPU in eval mode, info)
    example_inputs(info, dataset_dir, n, split)       real encoded inputs for parity checks
    evaluate_run(run_dir, data_dir, split)            metrics dict (eval.json)
"""

from .config import load_train_config, packaged_config_dir, resolve_config_path
from .loop import TASKS, Callback, Trainer, fit, make_task
from .runs import evaluate_run, example_inputs, format_table, load_run, resume_config
from .task import Task

__all__ = ["TASKS", "Callback", "Task", "Trainer", "evaluate_run", "example_inputs", "fit",
           "format_table", "load_run", "load_train_config", "make_task", "packaged_config_dir",
           "resolve_config_path", "resume_config"]
