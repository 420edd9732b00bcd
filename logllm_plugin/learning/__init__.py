"""Learning mode: the detector learns each user's normal on its own (DESIGN §11).

    history.py       bounded on-disk history of the (personal-data masked) sequences seen, per source
    model_store.py   versioned model directory shared by a learner and its followers
    feedback.py      operators' corrections: suppression now, training data at the next retrain
    checks.py        what a candidate model must pass before it serves
    train_job.py     the background trainer (a niced subprocess: scoring comes first)
    learner.py       LearningDetector: scores with the current version, learns, swaps atomically
    follower.py      FollowingDetector: serves whatever version the learner publishes

One implementation for every integration: the server, the OTLP bridge, the SDK processor and the
Elasticsearch annotator hold a LearningDetector where they would hold a Detector.
"""
