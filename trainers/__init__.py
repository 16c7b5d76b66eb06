"""The training side of proc-ml (torch): one loop for every task, the tasks, the models.

Installed as ``proc_ml.trainers``; the torch-free library (``proc_ml``) never imports it,
only the CLI commands do. Tasks are registered by name in ``proc_ml.registry``.

Public API::

    fit(config, data_dir, out_dir, resume=False)      train into a run folder
    load_train_config(task, path, overrides)          strict YAML + --set config
    load_run(run_dir, checkpoint="best")              -> (model on CPU in eval mode, Run)
    evaluate_run(run_dir, data_dir, split)            metrics dict (eval.json)
    example_inputs(info, dataset_dir, n, split)       encoded building-parts inputs
"""

from .config import load_train_config, packaged_config_dir, resolve_config_path
from .loop import Callback, Trainer, fit, make_task
from .runs import Run, evaluate_run, example_inputs, format_table, load_run, resume_config
from .task import Task

__all__ = ["Callback", "Run", "Task", "Trainer", "evaluate_run", "example_inputs", "fit",
           "format_table", "load_run", "load_train_config", "make_task", "packaged_config_dir",
           "resolve_config_path", "resume_config"]
