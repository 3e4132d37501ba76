using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ZonLb.Cli.Commands;

/// <summary>
/// The commands that talk to a running instance: status, stats, conntrack, neighbors, routes, backend, reload,
/// config show. Every read command has --json.
/// </summary>
public static class ControlCommands
{
    private static Option<string?> SocketOption() => new("--socket", "-s")
    {
        HelpName = "PATH",
        Description = "Control socket of the running instance (default: control_socket of --config, else /run/zonlb-afxdp/zonlb-afxdp.sock).",
    };

    private static Option<string?> ConfigOption() => new("--config", "-c") { HelpName = "FILE", Description = "Read control_socket from this configuration file." };

    private static Option<bool> JsonOption() => new("--json") { Description = "Print the answer as JSON." };

    /// <summary>A read command: calls the server and prints text or JSON.</summary>
    private static Command Read(string name, string description, string request, Func<JsonNode, string> text,
        Func<ParseResult, JsonObject>? args = null, params Option[] extra)
    {
        var socket = SocketOption();
        var config = ConfigOption();
        var json = JsonOption();
        var cmd = new Command(name, description) { socket, config, json };
        foreach (var o in extra)
            cmd.Options.Add(o);
        cmd.SetAction(r => Execute(r.GetValue(socket), r.GetValue(config), request, args?.Invoke(r), node =>
            Console.Write(r.GetValue(json) ? node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n" : text(node))));
        return cmd;
    }

    private static int Execute(string? socket, string? config, string request, JsonObject? args, Action<JsonNode> print)
    {
        try
        {
            var result = ControlClient.Call(ControlClient.ResolveSocket(socket, config), request, args);
            print(result ?? new JsonObject());
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is ControlException or Engine.Configuration.ConfigException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.RuntimeError;
        }
    }

    public static IEnumerable<Command> Create()
    {
        yield return Read("status",
            "Show a running instance: interfaces, services, connections, frames.\nExample: zonlb-afxdp status --config /etc/zonlb/zonlb.toml",
            "status", StatusText);
        yield return Read("stats",
            "Show counters: global, per service and per backend (packets, bytes, new and active connections, drops by reason).\n" +
            "Example: zonlb-afxdp stats --json",
            "stats", StatsText);

        var service = new Option<string?>("--service") { Description = "Only this service's connections." };
        var limit = new Option<int>("--limit") { Description = "At most this many entries.", DefaultValueFactory = _ => 1000 };
        var conntrack = new Command("conntrack", "Inspect or flush the connection table.");
        conntrack.Subcommands.Add(Read("list", "List tracked connections.\nExample: zonlb-afxdp conntrack list --service web",
            "conntrack.list", ConntrackText, r => new JsonObject { ["service"] = r.GetValue(service), ["limit"] = r.GetValue(limit) }, service, limit));
        var flushService = new Option<string?>("--service") { Description = "Only this service's connections." };
        conntrack.Subcommands.Add(Read("flush", "Forget tracked connections (their next packets count as new flows).",
            "conntrack.flush", n => $"flushed {n["flushed"]} connection(s)\n", r => new JsonObject { ["service"] = r.GetValue(flushService) }, flushService));
        yield return conntrack;

        var neighbors = new Command("neighbors", "The neighbour (ARP) cache of the data path.");
        neighbors.Subcommands.Add(Read("list", "List cached neighbours: next-hop address, interface, MAC, state.", "neighbors.list", NeighborsText));
        yield return neighbors;
        var routes = new Command("routes", "The route (FIB) cache of the data path.");
        routes.Subcommands.Add(Read("list", "List cached routes: destination, egress interface, next hop.", "routes.list", RoutesText));
        yield return routes;

        var backend = new Command("backend", "Change a running service's backends (not written to the config file; reload restores the file's).");
        foreach (var action in new[] { "add", "remove", "disable", "enable" })
        {
            var svc = new Option<string>("--service") { Description = "The service's name.", Required = true };
            var addr = new Option<string>("--address") { Description = "The backend's address.", Required = true };
            var port = new Option<int?>("--port") { Description = "The backend's port (add: default the service's port)." };
            var weight = new Option<int>("--weight") { Description = "Maglev weight (add only).", DefaultValueFactory = _ => 1 };
            string help = action switch
            {
                "add" => "Add a backend; it takes new flows at once.",
                "remove" => "Remove a backend from new flows for good; its connections drain.",
                "disable" => "Stop sending new flows to a backend; its connections are kept.",
                _ => "Send new flows to a disabled backend again.",
            };
            var cmd = Read(action, $"{help}\nExample: zonlb-afxdp backend {action} --service web --address 10.20.0.3 --port 8080",
                "backend", n => n["message"] + "\n",
                r => new JsonObject
                {
                    ["action"] = action, ["service"] = r.GetValue(svc), ["address"] = r.GetValue(addr),
                    ["port"] = r.GetValue(port), ["weight"] = r.GetValue(weight),
                }, svc, addr, port, weight);
            backend.Subcommands.Add(cmd);
        }
        yield return backend;

        yield return Read("reload",
            "Re-read the configuration file and apply the difference (services and backends) without detaching XDP or\n" +
            "dropping established connections. SIGHUP to the running process does the same.",
            "reload", n => n["message"] + "\n");
    }

    // ---------------- text rendering ----------------

    private static string S(JsonNode? n) => n?.ToString() ?? "";

    private static string StatusText(JsonNode n)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"zonlb-afxdp {S(n["version"])}, up {S(n["uptime_seconds"])} s, config {S(n["config_source"])}\n");
        foreach (var i in n["interfaces"]!.AsArray())
            sb.Append(CultureInfo.InvariantCulture, $"  interface {S(i!["name"])} (ifindex {S(i["if_index"])}) {S(i["state"])}: {S(i["xdp_mode"])} XDP, {S(i["queues"])} queue(s), {(i["zero_copy"]!.GetValue<bool>() ? "zero-copy" : "copy")}\n");
        sb.Append(CultureInfo.InvariantCulture, $"  services {S(n["services"])}, connections {S(n["active_connections"])}/{S(n["connection_capacity"])}, frames free {S(n["frames_free"])}/{S(n["frames_total"])}\n");
        return sb.ToString();
    }

    private static string Drops(JsonNode? d)
    {
        var o = d as JsonObject;
        return o == null || o.Count == 0 ? "none" : string.Join(' ', o.Select(kv => $"{kv.Key}={kv.Value}"));
    }

    private static string StatsText(JsonNode n)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture,
            $"rx {S(n["rx_packets"])} packets {S(n["rx_bytes"])} bytes ({S(n["rx_multi_buffer"])} multi-buffer), tx {S(n["tx_packets"])} packets {S(n["tx_bytes"])} bytes\n" +
            $"to backends {S(n["to_backend"])}, to clients {S(n["to_client"])}, new connections {S(n["new_connections"])}, active {S(n["active_connections"])}, expired {S(n["expired_connections"])}, " +
            $"early drops {S(n["early_drops"])}, nat ports reused {S(n["nat_ports_reused"])}, time-wait resets {S(n["time_wait_resets"])}\n" +
            $"partial checksums repaired {S(n["partial_checksums_repaired"])}, held for a neighbour {S(n["held_for_neighbor"])}\n" +
            $"drops: {Drops(n["drops"])}\n" +
            $"xdp program: {string.Join(' ', n["xdp_program"]!.AsObject().Select(kv => $"{kv.Key}={kv.Value}"))}\n");
        foreach (var w in n["workers"]!.AsArray())
            sb.Append(CultureInfo.InvariantCulture,
                $"worker {S(w!["index"])}{(w["cpu"]!.GetValue<int>() >= 0 ? $" (cpu {S(w["cpu"])})" : "")} [{string.Join(' ', w["queues"]!.AsArray().Select(S))}]: " +
                $"rx {S(w["rx_packets"])}, tx {S(w["tx_packets"])}, handed off {S(w["handed_off"])}, connections {S(w["active_connections"])}\n");
        foreach (var k in n["sockets"]!.AsArray())
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"socket {S(k!["interface"])}:{S(k["queue"])} (worker {S(k["worker"])}): rx_dropped {S(k["rx_dropped"])}, rx_ring_full {S(k["rx_ring_full"])}, " +
                $"rx_fill_ring_empty_descs {S(k["rx_fill_ring_empty_descs"])}, rx_invalid_descs {S(k["rx_invalid_descs"])}, tx_invalid_descs {S(k["tx_invalid_descs"])}, " +
                $"tx_ring_empty_descs {S(k["tx_ring_empty_descs"])}\n");
            foreach (var h in k["hints"]!.AsArray())
                sb.Append(CultureInfo.InvariantCulture, $"  likely cause: {S(h)}\n");
        }
        foreach (var i in n["interfaces"]!.AsArray())
            if (i!["xdp_counters"]!.AsObject().Count > 0)
                sb.Append(CultureInfo.InvariantCulture, $"interface {S(i["interface"])}: {string.Join(' ', i["xdp_counters"]!.AsObject().Select(kv => $"{kv.Key}={kv.Value}"))}\n");
        foreach (var s in n["services"]!.AsArray())
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"service {S(s!["name"])} {S(s["vip"])} {S(s["protocol"])} {S(s["port"])}{(s["removed"]!.GetValue<bool>() ? " (removed)" : "")}: " +
                $"new {S(s["new_connections"])}, active {S(s["active_connections"])}, drops: {Drops(s["drops"])}\n");
            foreach (var b in s["backends"]!.AsArray())
                sb.Append(CultureInfo.InvariantCulture,
                    $"  backend {S(b!["address"])}:{S(b["port"])} {S(b["state"])} weight {S(b["weight"])}: " +
                    $"to backend {S(b["packets_to_backend"])} pkts {S(b["bytes_to_backend"])} B, to client {S(b["packets_to_client"])} pkts {S(b["bytes_to_client"])} B, " +
                    $"new {S(b["new_connections"])}, active {S(b["active_connections"])}{(b["health_reason"] is { } hr ? $" ({hr})" : "")}\n");
        }
        return sb.ToString();
    }

    private static string ConntrackText(JsonNode n)
    {
        var sb = new StringBuilder();
        foreach (var c in n.AsArray())
            sb.Append(CultureInfo.InvariantCulture,
                $"{S(c!["service"]),-12} {S(c["protocol"]),-4} {S(c["client"]),-21} -> {S(c["vip"]),-21} => {S(c["snat"]),-21} -> {S(c["backend"]),-21} {S(c["state"]),-12} idle {S(c["idle_ms"])} ms\n");
        sb.Append(CultureInfo.InvariantCulture, $"{n.AsArray().Count} connection(s)\n");
        return sb.ToString();
    }

    private static string NeighborsText(JsonNode n)
    {
        var sb = new StringBuilder();
        foreach (var h in n.AsArray().GroupBy(x => (S(x!["gateway"]), S(x!["interface"]))).Select(g => g.First()))
            sb.Append(CultureInfo.InvariantCulture, $"{S(h!["gateway"]),-16} dev {S(h["interface"]),-10} lladdr {S(h["mac"]) switch { "" => "(none)", var m => m },-18} {S(h["state"])}\n");
        return sb.ToString();
    }

    private static string RoutesText(JsonNode n)
    {
        var sb = new StringBuilder();
        foreach (var h in n.AsArray())
            sb.Append(CultureInfo.InvariantCulture, $"{S(h!["destination"]),-16} dev {S(h["interface"]),-10} via {S(h["gateway"]),-16} {S(h["state"])}, refresh in {S(h["refresh_in_ms"])} ms\n");
        return sb.ToString();
    }
}
