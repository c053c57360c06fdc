"""The Python client end to end against the apqd client_test.sh started (tokens on)."""

import json
import os
import unittest

import apq

ADDRESS = os.environ["APQ_ADDRESS"]
TOKEN = os.environ["APQ_TOKEN"]
TMP = os.environ["APQ_TEST_TMP"]


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = apq.Client(ADDRESS, token=TOKEN, timeout=600)
        # One small search of a space with a supernet, shared by the tests that read a job.
        cls.result = cls.client.search("fmnist_mbv2", "local-cpu", max_bitops=1e12,
                                       population=8, generations=2, seed=1, label="python",
                                       progress=True)

    def test_spaces_describe_their_configs(self):
        spaces = {space["name"]: space for space in self.client.spaces()}
        self.assertEqual(
            set(spaces), {"ofa_mbv3", "apq_mbv2", "fmnist_mbv2", "fmnist_lowbit", "fmnist_int8float"}
        )
        self.assertTrue(spaces["fmnist_lowbit"]["has_supernet"])
        described = self.client.describe_space("fmnist_lowbit")
        self.assertEqual(len(described["fields"]), 75)
        self.assertEqual(described["fields"][0]["json_path"], "[0].ks[0]")
        self.assertIn("bitfusion", described["modelled_devices"])
        # The example evaluates, with a latency on a device that prices the space.
        example = json.loads(described["example_config_json"])
        [metrics] = self.client.evaluate("fmnist_lowbit", [example], device="bitfusion")
        self.assertGreater(metrics["accuracy"], 0.5)
        self.assertGreater(metrics["latency_ms"], 0)
        self.assertTrue(any(e["name"] == "dnas" for e in self.client.engines()))
        self.assertTrue(any(d["name"] == "local-cpu" for d in self.client.devices()))

    def test_a_search_gives_its_config_candidates_and_deployable_network(self):
        result = self.result
        self.assertTrue(result.ok, result.error)
        self.assertEqual(result.state, "succeeded")
        self.assertIsInstance(result.config, list)
        self.assertGreater(result.metrics["accuracy"], 0.5)
        candidates = self.client.candidates(result.job_id, sort="accuracy")
        self.assertGreater(len(candidates), 1)
        self.assertEqual(max(c["accuracy"] for c in candidates), candidates[0]["accuracy"])
        self.assertEqual(candidates[0]["name"],
                         "jobs/%s/candidates/%d" % (result.job_id, candidates[0]["id"]))
        self.assertEqual(len(self.client.candidates(result.job_id, limit=3)), 3)
        deployable = self.client.deployable_config(result.job_id)
        self.assertEqual(deployable["config"], result.config)
        listed = self.client.jobs(space="fmnist_mbv2", device="local-cpu")
        self.assertIn(result.job_id, [job.job_id for job in listed])
        self.assertEqual(self.client.jobs(space="ofa_mbv3"), [])
        self.assertIn(result.job_id, [job.job_id for job in self.client.jobs(label="python")])
        self.assertEqual(self.client.jobs(label="no such label"), [])
        path = os.path.join(TMP, "best.pt")
        accuracy = self.client.export_torchscript(result.job_id, path)
        self.assertGreater(os.path.getsize(path), 1000)
        self.assertGreater(accuracy, 0.5)

    def test_datasets_train_a_predictor(self):
        configs = [c["config"] for c in self.client.candidates(self.result.job_id, limit=12)]
        measured = self.client.evaluate("fmnist_mbv2", configs, measure="quantized")
        records = [{"config": config, "accuracy": m["measured_accuracy"], "split": "validation"}
                   for config, m in zip(configs, measured)]
        dataset = self.client.upload_dataset("python-measured", "fmnist_mbv2", records)
        self.assertEqual(dataset["name"], "python-measured")
        trained = self.client.train("fmnist_mbv2", "python-measured", kind="scratch", seed=1)
        self.assertEqual(trained["state"], "succeeded", trained)
        self.assertTrue(trained["predictor_version"])

    def test_errors_carry_the_servers_details(self):
        with self.assertRaises(apq.InvalidArgument) as refused:
            self.client.search("fmnist_mbv2", "local-cpu", max_bitops=-1)
        self.assertEqual(refused.exception.fields, ["budgets.max_bitops"])
        with self.assertRaises(apq.InvalidArgument) as bad_option:
            self.client.search("fmnist_lowbit", "bitfusion", max_latency_ms=0.4, engine="dnas",
                               options={"steps": 0})
        self.assertEqual(bad_option.exception.fields, ["engine.options.steps"])
        with self.assertRaises(apq.NotFound) as unknown:
            self.client.describe_space("nope")
        self.assertEqual(unknown.exception.resource, ("space", "nope"))
        with self.assertRaises(apq.FailedPrecondition) as no_supernet:
            self.client.evaluate("ofa_mbv3", [json.loads(
                self.client.describe_space("ofa_mbv3")["example_config_json"])],
                measure="fp32")
        self.assertTrue(no_supernet.exception.precondition_violations)
        with self.assertRaises(apq.InvalidArgument) as table:
            self.client.upload_table("python-chip", "conv-json", [__file__])
        self.assertTrue(table.exception.field_violations)
        with self.assertRaises(apq.Unauthenticated):
            apq.Client(ADDRESS).spaces()
        with self.assertRaises(TypeError):
            self.client.search("fmnist_lowbit", "bitfusion", engine="dnas", options={"x": [1]})


if __name__ == "__main__":
    unittest.main()
