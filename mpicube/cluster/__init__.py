"""Running cube jobs on a Slurm cluster: the sbatch script, the run-end producer, the watcher."""
