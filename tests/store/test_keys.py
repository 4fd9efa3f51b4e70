from position_order_service.store.keys import Channels, Keys


def test_seed_key_names() -> None:
    k = Keys()
    assert k.position("u1", "okx", "BTC-USDT-SWAP", "long") == "positions:realtime:u1:okx:BTC-USDT-SWAP:long"
    assert k.position_index("u1", "okx") == "positions:index:u1:okx"
    assert k.order("u1", "okx", "123") == "orders:realtime:u1:okx:123"
    assert k.open_orders("u1", "okx") == "orders:open:u1:okx"
    assert k.closed_orders("u1", "okx") == "orders:closed:u1:okx"
    assert k.trailing_stop("u1", "okx", "BTCUSDT", "long") == "trailing_stops:u1:okx:BTCUSDT:long"
    assert k.conditional_rule("u1", "r1") == "conditional_rules:u1:r1"
    assert k.conditional_rule_index("u1") == "conditional_rules:index:u1"
    assert k.active_users() == "active_users:position_order_service"
    assert k.bot_status("u1") == "user:u1:bot:status"
    assert k.bot_exchanges("u1") == "user:u1:bot:exchanges"
    assert k.watchlist("u1", "okx") == "user:u1:watchlist:okx"
    assert k.legacy_hyperrsi_position("u1", "BTC-USDT-SWAP", "long") == "user:u1:position:BTC-USDT-SWAP:long"
    assert (
        k.legacy_grid_level("okx", "u1", "BTC-USDT-SWAP", 5)
        == "okx:user:u1:symbol:BTC-USDT-SWAP:active_grid:5"
    )


def test_seed_channel_names() -> None:
    c = Channels()
    assert c.positions("u1", "okx", "BTC-USDT-SWAP") == "positions:u1:okx:BTC-USDT-SWAP"
    assert c.orders("u1", "okx") == "orders:u1:okx"
    assert c.prices("okx", "BTC-USDT-SWAP") == "prices:okx:BTC-USDT-SWAP"
    assert c.trailing_stops("u1") == "trailing_stops:u1"
    assert c.conditional_rules("u1") == "conditional_rules:u1"


def test_cluster_tags_keep_one_user_in_one_slot() -> None:
    k = Keys(cluster_tags=True)
    assert k.position("u1", "okx", "X", "long") == "positions:realtime:{u1}:okx:X:long"
    assert k.event_stream("u1") == "events:{u1}"
    assert k.event_seq("u1") == "events:seq:{u1}"


def test_index_member_round_trip_with_colons_in_symbol() -> None:
    m = Keys.position_index_member("BTC/USDT:USDT", "short")
    assert Keys.split_position_index_member(m) == ("BTC/USDT:USDT", "short")
