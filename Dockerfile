# syntax=docker/dockerfile:1
# Images of tango-operator, one target per component (the Helm chart's defaults name them):
#   docker build --target watcher -t tango-operator-watcher:0.1.0 .   # list/watch → Redis; no PyTango, no Jinja2
#   docker build --target worker  -t tango-operator-worker:0.1.0 .    # Celery workers: PyTango, dsconfig, Jinja2
#   docker build --target flower  -t tango-operator-flower:0.1.0 .    # Celery Flower (python -m workers.flower)
# Every image runs as the non-root user 10001:10001 (the chart's runAsUser), needs no writable
# root filesystem (/tmp is the only scratch space) and carries no credentials: the Redis URL
# and password, the Flower users and the kubeconfig come from the environment at run time.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 tango-operator \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin tango-operator

# --- the project as a wheel (the emulator and the tests stay out of it) -------------------
FROM base AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tango_operator ./tango_operator
COPY watcher ./watcher
COPY workers ./workers
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- one virtualenv per component, with only that component's extra ------------------------
FROM base AS venv-watcher
COPY --from=wheel /wheels /wheels
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install "$(ls /wheels/tango_operator-*.whl)[watcher]"

FROM base AS venv-worker
COPY --from=wheel /wheels /wheels
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install "$(ls /wheels/tango_operator-*.whl)[worker]"

FROM base AS venv-flower
COPY --from=wheel /wheels /wheels
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install "$(ls /wheels/tango_operator-*.whl)[flower]"

# --- the images ------------------------------------------------------------------------------
FROM base AS watcher
COPY --from=venv-watcher /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["tango-operator"]
CMD ["watcher"]

FROM base AS worker
COPY --from=venv-worker /opt/venv /opt/venv
# where docker-compose's TANGO DB (PyTango's DataBaseds, same image) keeps its sqlite file
RUN install -d -o 10001 -g 10001 /var/lib/tango
# the Jinja2 templates of the child manifests (workers.rendering reads this variable)
COPY templates /opt/tango-operator/templates
ENV PATH=/opt/venv/bin:$PATH \
    TANGO_OPERATOR_TEMPLATES=/opt/tango-operator/templates
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["tango-operator"]
CMD ["worker", "--concurrency", "8", "--without-gossip", "--without-mingle"]

FROM base AS flower
COPY --from=venv-flower /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
USER 10001:10001
EXPOSE 5555
ENTRYPOINT ["python", "-m", "workers.flower"]
CMD ["--address=0.0.0.0", "--port=5555", "--max_tasks=10000", "--purge_offline_workers=600"]
