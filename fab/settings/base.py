"""What every model of an environment file's schema shares (fab.settings)."""
from pydantic import BaseModel, ConfigDict

ENV_VAR_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
