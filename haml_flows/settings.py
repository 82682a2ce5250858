"""Settings for haml-flows: one class, environment prefix ``HAML_``, YAML override.

Values come, in increasing priority, from the defaults below, the YAML file named
by ``HAML_CONFIG_FILE`` (default ``~/.haml/config.yaml``) and ``HAML_*``
environment variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_DEFAULT_CONFIG_FILE = "~/.haml/config.yaml"


class HamlSettings(BaseSettings):
    """Defaults for the database, the engines and the command line."""

    model_config = SettingsConfigDict(
        env_prefix="HAML_", extra="forbid", validate_assignment=True
    )

    CONFIG_FILE: str = Field(
        _DEFAULT_CONFIG_FILE, description="YAML file whose keys override defaults."
    )
    DB_HOST: str = Field(
        "127.0.0.1", description="Address the embedded database server binds to."
    )
    DB_PORT: int = Field(27217, description="Port of the embedded database server.")
    DB_DIR: Path = Field(
        Path("~/.haml/db"),
        description="Data directory of the embedded database server.",
    )
    DB_SYNC_ON_COMMIT: bool = Field(
        True,
        description="Start the embedded server with --sync-on-commit so that "
        "acknowledged writes survive a killed server process.",
    )
    DB_START_TIMEOUT: float = Field(
        30.0, description="Seconds to wait for a started server to answer."
    )
    MONGODB_URI: str | None = Field(
        None,
        repr=False,
        description="MongoDB URI. None means the embedded server at "
        "DB_HOST:DB_PORT. Credentials belong here or in the environment only.",
    )
    MONGODB_USERNAME: str | None = Field(
        None, description="User for SCRAM authentication (config file or env only)."
    )
    MONGODB_PASSWORD: SecretStr | None = Field(
        None,
        description="Password for SCRAM authentication (config file or env only); "
        "never printed, logged or written into workflow documents.",
    )
    MONGODB_AUTH_SOURCE: str = Field(
        "admin", description="Database holding the user (authSource)."
    )
    MONGODB_CLIENT_OPTIONS: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra pymongo MongoClient options, passed through unchanged, "
        "e.g. {'tls': true, 'tlsCAFile': '/path/ca.pem'}.",
    )
    DB_AUTH: bool = Field(
        False,
        description="Start the embedded server with --auth (SCRAM-SHA-256); "
        "clients then need MONGODB_USERNAME and MONGODB_PASSWORD.",
    )
    PROGRESS_SECONDS: float = Field(
        10.0, gt=0, description="Seconds between progress lines of a running stage."
    )
    DB_RETRY_SECONDS: float = Field(
        300.0,
        ge=0,
        description="How long reads and writes of the job store retry while the "
        "database does not answer before the run stops with an error.",
    )
    DB_RETRY_INITIAL_DELAY: float = Field(
        0.5, gt=0, description="First wait between retries, s; doubles each retry."
    )
    DB_RETRY_MAX_DELAY: float = Field(
        15.0, gt=0, description="Longest wait between two retries, s."
    )
    DATABASE: str = Field("haml", description="Database name for all collections.")
    DOCS_COLLECTION: str = Field(
        "outputs", description="Collection of job output documents (jobflow)."
    )
    DATA_BUCKET: str = Field(
        "outputs_data", description="GridFS bucket for trajectories and potentials."
    )
    SERVER_SELECTION_TIMEOUT_MS: int = Field(
        3000, description="How long a client waits for the database to answer."
    )
    MLP_CMD: str | None = Field(
        None,
        description="MLIP `mlp` command (e.g. 'mpirun -n 4 mlp'); None uses motep; "
        "'>>mlp_cmd<<' reads env.mlp_cmd of the worker's my_fworker.yaml.",
    )
    VASP_CMD: str | None = Field(
        None,
        description="VASP command for reference.engine 'vasp' (e.g. 'srun vasp_std'); "
        "'>>vasp_cmd<<' reads env.vasp_cmd of the worker's my_fworker.yaml.",
    )
    CP2K_CMD: str | None = Field(
        None,
        description="CP2K command for reference.engine 'cp2k' (e.g. 'srun cp2k.psmp'); "
        "'>>cp2k_cmd<<' reads env.cp2k_cmd of the worker's my_fworker.yaml.",
    )
    CP2K_DATA_DIR: str = Field(
        "/usr/share/cp2k",
        description="CP2K's data directory (BASIS_MOLOPT, GTH_POTENTIALS, dftd3.dat).",
    )
    LMP_CMD: str | None = Field(
        None,
        description="LAMMPS (with MLIP) command for mlpmd.engine 'lammps' (e.g. "
        "'srun lmp'); '>>lmp_cmd<<' reads env.lmp_cmd of the worker's my_fworker.yaml.",
    )

    @model_validator(mode="before")
    @classmethod
    def _load_yaml(cls, values: Any) -> Any:
        """Fill values that are not given from the YAML config file."""
        import os

        config_file = Path(
            os.environ.get("HAML_CONFIG_FILE")
            or (values or {}).get("CONFIG_FILE")
            or _DEFAULT_CONFIG_FILE
        ).expanduser()
        if config_file.exists():
            file_values = yaml.safe_load(config_file.read_text()) or {}
            if not isinstance(file_values, dict):
                raise ValueError(f"{config_file} must hold a mapping of settings")
            new_values = {k.upper(): v for k, v in file_values.items()}
            new_values.update(values or {})
            return new_values
        return values

    @property
    def db_dir(self) -> Path:
        """The embedded server's data directory, with ~ expanded."""
        return Path(self.DB_DIR).expanduser()

    @property
    def mongodb_uri(self) -> str:
        """The URI clients connect to."""
        return self.MONGODB_URI or f"mongodb://{self.DB_HOST}:{self.DB_PORT}"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of every MongoClient: timeouts, credentials, TLS."""
        kwargs: dict[str, Any] = {
            "serverSelectionTimeoutMS": self.SERVER_SELECTION_TIMEOUT_MS
        }
        if self.MONGODB_USERNAME:
            kwargs["username"] = self.MONGODB_USERNAME
            kwargs["authSource"] = self.MONGODB_AUTH_SOURCE
        if self.MONGODB_PASSWORD is not None:
            kwargs["password"] = self.MONGODB_PASSWORD.get_secret_value()
        kwargs.update(self.MONGODB_CLIENT_OPTIONS)
        return kwargs

    @property
    def uses_embedded_server(self) -> bool:
        """True when no external URI is configured."""
        return not self.MONGODB_URI  # unset, or set empty


def get_settings(settings: HamlSettings | None = None) -> HamlSettings:
    """``settings``, or this process's read fresh from file and environment."""
    return settings if settings is not None else HamlSettings()
