"""Evaluate a saved model on held-out trainees (the same as ``python -m sb3_ext.evaluate``).

python examples/evaluate.py runs/ppo/model.zip --trainees 200 --out runs/ppo
"""

from sb3_ext.evaluate import main

if __name__ == "__main__":
    main()
