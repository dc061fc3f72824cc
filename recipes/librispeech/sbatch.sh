#!/bin/bash
# LibriSpeech 960 h on 2 nodes x 8 GPUs with SLURM (Lightning reads SLURM's variables; one task per GPU).
# Prepare the data once first, on the shared filesystem:
#   python recipes/librispeech/prepare.py --out-dir data/librispeech --lm
# then: sbatch recipes/librispeech/sbatch.sh   (resubmitting the same script resumes from last.ckpt)
#SBATCH --job-name=asr-librispeech-960h
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --mem=0
#SBATCH --time=24:00:00
#SBATCH --signal=SIGUSR1@120
#SBATCH --output=exp/librispeech-960h/slurm-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR}"
export OMP_NUM_THREADS=1

srun .venv/bin/python recipes/librispeech/train.py --preset 960h --out-dir data/librispeech \
    --exp-dir exp/librispeech-960h trainer.devices=8 trainer.num_nodes=2 trainer.strategy=ddp
