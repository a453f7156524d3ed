"""MLflow "models from code" entry point: MLflow runs this file to build the pyfunc model when loading it,
so no pickled Python object is stored (see au_ttt.predict.mlflow_model)."""

import mlflow

from au_ttt.predict.mlflow_model import AUTTTPyfunc

mlflow.models.set_model(AUTTTPyfunc())
