using System.Text.Json;
using System.Text.Json.Nodes;

namespace ZonLb.Engine.Control;

/// <summary>
/// The control socket's protocol: one JSON object per line each way.
/// Request: {"command": "stats", "args": {...}}. Response: {"ok": true, "result": ...} or {"ok": false, "error": "..."}.
/// Commands: status, stats, conntrack.list {service?, limit?}, conntrack.flush {service?}, neighbors.list,
/// routes.list, backend {action, service, address, port?, weight?}, reload, config.show.
/// </summary>
public static class ControlProtocol
{
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        WriteIndented = false,
    };

    public static string Request(string command, JsonObject? args = null) =>
        new JsonObject { ["command"] = command, ["args"] = args ?? new JsonObject() }.ToJsonString();

    public static string Ok(object? result) =>
        new JsonObject { ["ok"] = true, ["result"] = JsonSerializer.SerializeToNode(result, Json) }.ToJsonString();

    public static string Error(string message) =>
        new JsonObject { ["ok"] = false, ["error"] = message }.ToJsonString();
}
