# One image for every DBL service (collector, dataflow, dispatcher/rep service, commands).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY runtime ./runtime
COPY dbl ./dbl
COPY tracking ./tracking
COPY dataflows ./dataflows
COPY alerts ./alerts
COPY config ./config
COPY backtests ./backtests
COPY training ./training
RUN pip install --no-cache-dir .
# Settings come from the environment (config/settings.py); these point at the compose services.
ENV DBL_CONFIG_DIR=/app/config
