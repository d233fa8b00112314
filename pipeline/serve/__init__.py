"""Serve a fine-tuned classifier over HTTP: a FastAPI app (JSON API + a plain HTML page) run by uvicorn.

    from pipeline.models.predict import Classifier
    from pipeline.serve import create_app
    app = create_app(Classifier.load("outputs/multirun/x"))   # any ASGI server can run it

``pipeline serve RUN_OR_SWEEP`` does the same and runs uvicorn (:func:`pipeline.serve.app.run`).
"""

from pipeline.serve.app import Limits, create_app, model_info, run

__all__ = ["Limits", "create_app", "model_info", "run"]
