# Two commands set up a fresh machine: `make demo` runs the main job, `make test` the tests.
.PHONY: setup demo test bench eval models clean fuzz fuzz-api
# EXTRA_DATA="dir1 dir2" (folders written by `xueliang dataset export`): `make models` adds their
# garbage/spill frames to the litter model's training and validation sets, `make eval` reports on
# their val split separately. Without it, both do what they always did.
export EXTRA_DATA

setup:
	@bash deploy/setup.sh

demo: setup
	.venv/bin/xueliang demo

# four pytest-xdist workers on two cores: most process-level tests wait on a clock (a dwell, a keepalive, a
# restart), so the cores idle under two (1,099 tests on 2026-12-06: 568 s with two workers, 63 % of two cores
# busy; 437 s with three; 1,514 tests in a fresh clone the same evening: 543 s with three, 444 s with four)
test: setup
	.venv/bin/python -m pytest -q -n 4 --dist worksteal

models: setup
	bash models/build_vehicle_model.sh
	bash models/build_litter_model.sh

eval: setup
	.venv/bin/python models/eval_vehicle.py
	.venv/bin/python models/eval_parking.py
	.venv/bin/python models/eval_parkgen.py
	.venv/bin/python models/eval_parkgen.py --set parkgen2
	.venv/bin/python models/litter/evaluate.py $(if $(EXTRA_DATA),--extra $(EXTRA_DATA))

clean:
	rm -rf data .pytest_cache

fuzz: setup
	.venv/bin/python bench/fuzz_gateway.py --messages 5000

fuzz-api: setup  # the HTTP API's inputs, 2,000 examples per surface (make test runs 50)
	XL_API_FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest -q tests/test_api_fuzz.py

bench: setup
	.venv/bin/python bench/fuzz_gateway.py --messages 5000
	.venv/bin/python bench/gateway_throughput.py
	.venv/bin/python bench/edge_capacity.py
	.venv/bin/python bench/litter_cost.py
