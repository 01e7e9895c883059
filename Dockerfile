FROM python:3.11-slim
WORKDIR /app
# CUDA build of torch for GPU workers (the default wheel on PyPI).
RUN pip install --no-cache-dir torch==2.13.0
COPY pyproject.toml README.md ./
# Every package pyproject.toml's packages.find lists (tests/unit/test_deployment.py holds them together).
COPY imagegen imagegen
COPY streams streams
COPY api api
COPY projections projections
COPY inference inference
COPY webhooks webhooks
COPY storage storage
RUN pip install --no-cache-dir . && pip install --no-cache-dir --no-deps faust-streaming==0.15.3
EXPOSE 8015
CMD ["imagegen", "api"]
