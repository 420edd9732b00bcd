from logllm_plugin.templates import NOVEL_ID, TemplateStore


def test_variables_are_masked_and_share_one_template():
    store = TemplateStore()
    lines = [
        "Connection from 10.0.0.1:8080 closed after 532 ms request 75f940f5-1111-2222-3333-444455556666",
        "Connection from 192.168.1.20:443 closed after 7 ms request 0a1b2c3d-aaaa-bbbb-cccc-ddddeeeeffff",
    ]
    store.learn(lines)
    first, second = store.lookup(lines[0]), store.lookup(lines[1])
    assert first.template_id == second.template_id != NOVEL_ID
    assert "10.0.0.1" not in first.text and "532" not in first.text
    assert first.text.startswith("Connection from <*> closed after <*> ms")


def test_line_unseen_in_training_is_novel_with_its_masked_text():
    store = TemplateStore()
    store.learn(["user alice logged in", "user bob logged in"])
    match = store.lookup("disk /dev/sda1 failed with code 17")
    assert match.novel and match.template_id == NOVEL_ID
    assert "17" not in match.text and "disk" in match.text


def test_saved_store_gives_the_same_ids_after_loading(tmp_path):
    store = TemplateStore()
    lines = [f"job {i} finished in {i * 3} s" for i in range(20)] + [f"job {i} failed: disk full" for i in range(5)]
    store.learn(lines)
    store.save(tmp_path / "templates.json")
    loaded = TemplateStore.load(tmp_path / "templates.json")
    assert [store.lookup(x).template_id for x in lines] == [loaded.lookup(x).template_id for x in lines]
    assert loaded.vocab_size == store.vocab_size


def test_a_megabyte_line_is_templated_on_its_head_without_error():
    store = TemplateStore()
    huge = "payload " + "x" * 1_000_000
    store.learn([huge])
    assert len(store.lookup(huge).text) <= store.config.max_template_chars
