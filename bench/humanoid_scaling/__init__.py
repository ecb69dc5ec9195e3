"""The scaling study of a paper-scale Humanoid run, run by bench/scaling.py.

    figures        the run's figures (jobs/humanoid.yaml, the env, the paper's layout, assumed hardware)
    measure_mpi    the collective and the task counter's grab, timed under mpiexec
    measure_work   the update at paper scale and Humanoid episode times, on one core
    measurements   all of the above, measured now or read back for --reproject
    simulate       generation makespans under each assignment of episodes to ranks
    project        the model: every term of T(p) and E(p) per assignment and rank count
    tables         the Markdown tables
    conclusion     the projection at 1,440 ranks in plain language
    section        the docs/scaling.md section and its place between the marker comments
"""
