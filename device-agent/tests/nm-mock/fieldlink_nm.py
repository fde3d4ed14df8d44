"""fieldlink's NetworkManager mock: python-dbusmock's `networkmanager` template plus a simulated
radio, so that activations walk through NetworkManager's device states and end with the state
reasons real NetworkManager gives.

Start it on a private bus standing in for the system bus:

    DBUS_SYSTEM_BUS_ADDRESS=unix:path=... python3 -m dbusmock --system \
        --template device-agent/tests/nm-mock/fieldlink_nm.py

Everything of the upstream template stays (AddWiFiDevice, AddEthernetDevice, AddAccessPoint,
AddWiFiConnection, SetConnectivity, ... on org.freedesktop.DBus.Mock at /org/freedesktop). Added:

- SetNetwork(ssid, passphrase, fault): what the radio does when a device joins `ssid`: the
  passphrase it accepts ("" = open) and a fault: "" (none), "no_dhcp", "portal", "limited" or
  "stall" (stays associating). A visible SSID without SetNetwork accepts any credentials.
- SetStepDelay(ms): time between two device states (default 30 ms).

AddAndActivateConnection and ActivateConnection run the radio: PREPARE -> CONFIG ->
(NEED_AUTH -> FAILED(NO_SECRETS) on a wrong passphrase) -> IP_CONFIG ->
(FAILED(IP_CONFIG_UNAVAILABLE) without DHCP) -> IP_CHECK -> ACTIVATED, with StateChanged and
PropertiesChanged signals on the device and the active connection; an SSID that is neither
visible nor hidden-and-configured fails with SSID_NOT_FOUND. A new activation first takes the
device's previous connection down (reason NEW_ACTIVATION). Deleting a profile deactivates it.
Secrets stay out of GetSettings and come back from GetSecrets, as with NetworkManager.
"""

# SPDX-License-Identifier: Apache-2.0
# pylint: disable=invalid-name,wildcard-import,unused-wildcard-import

import ctypes
import itertools
import sys
import uuid

import dbus
import dbusmock
from dbusmock import MOCK_IFACE
from dbusmock.templates import networkmanager as upstream
from dbusmock.templates.networkmanager import *  # noqa: F401,F403 (the upstream Mock methods)

BUS_NAME = upstream.BUS_NAME
MAIN_OBJ = upstream.MAIN_OBJ
SYSTEM_BUS = True
IS_OBJECT_MANAGER = True

MANAGER_OBJ = upstream.MANAGER_OBJ
MANAGER_IFACE = upstream.MANAGER_IFACE
SETTINGS_OBJ = upstream.SETTINGS_OBJ
SETTINGS_IFACE = upstream.SETTINGS_IFACE
DEVICE_IFACE = upstream.DEVICE_IFACE
WIRELESS_IFACE = upstream.WIRELESS_DEVICE_IFACE
AP_IFACE = upstream.ACCESS_POINT_IFACE
CONNECTION_IFACE = upstream.CSETTINGS_IFACE
ACTIVE_IFACE = upstream.ACTIVE_CONNECTION_IFACE

# NMDeviceState
PREPARE, CONFIG, NEED_AUTH, IP_CONFIG, IP_CHECK = 40, 50, 60, 70, 80
ACTIVATED, DEACTIVATING, FAILED, DISCONNECTED = 100, 110, 120, 30
# NMDeviceStateReason
R_NONE, R_IP_CONFIG_UNAVAILABLE, R_NO_SECRETS = 0, 5, 7
R_CONNECTION_REMOVED, R_USER_REQUESTED, R_SSID_NOT_FOUND, R_NEW_ACTIVATION = 38, 39, 53, 60
# NMActiveConnectionState and its reasons
AC_ACTIVATING, AC_ACTIVATED, AC_DEACTIVATED = 1, 2, 4
AC_REASON = {R_NO_SECRETS: 9, R_IP_CONFIG_UNAVAILABLE: 5, R_SSID_NOT_FOUND: 1}
# NMConnectivityState
CONNECTIVITY = {"portal": 2, "limited": 3}
SECRET_KEYS = ("psk", "wep-key0", "password")

RADIO = {"networks": {}, "step_ms": 30}
_COUNTER = itertools.count(1)

# --- GLib timers through ctypes (the mock's main loop is GLib's default context) --------------

_GLIB = ctypes.cdll.LoadLibrary("libglib-2.0.so.0")
_SOURCE_FUNC = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
_GLIB.g_timeout_add.argtypes = [ctypes.c_uint, _SOURCE_FUNC, ctypes.c_void_p]
_GLIB.g_timeout_add.restype = ctypes.c_uint
_ALIVE = {}


def _later(ms, action):
    """Runs `action` once, `ms` milliseconds from now, on the main loop."""
    key = next(_COUNTER)

    def fire(_data):
        _ALIVE.pop(key, None)
        try:
            action()
        except Exception as error:  # pylint: disable=broad-except
            print(f"fieldlink_nm: {error!r}", file=sys.stderr)
        return 0

    callback = _SOURCE_FUNC(fire)
    _ALIVE[key] = callback
    _GLIB.g_timeout_add(max(int(ms), 0), callback, None)


# --- Mock methods ------------------------------------------------------------------------------


@dbus.service.method(MOCK_IFACE, in_signature="sss", out_signature="")
def SetNetwork(_self, ssid, passphrase, fault):
    """Configures how the radio answers a join of `ssid`."""
    RADIO["networks"][str(ssid)] = {"passphrase": str(passphrase), "fault": str(fault)}


@dbus.service.method(MOCK_IFACE, in_signature="u", out_signature="")
def SetStepDelay(_self, ms):
    """Sets the time between two device states."""
    RADIO["step_ms"] = int(ms)


@dbus.service.method(MOCK_IFACE, in_signature="ssi", out_signature="s")
def AddWiFiDevice(self, device_name, iface_name, state):
    """The upstream Wi-Fi device, with LastScan and a RequestScan that updates it."""
    path = upstream.AddWiFiDevice(self, device_name, iface_name, state)
    device = dbusmock.get_object(path)
    device.AddProperties(WIRELESS_IFACE, {"LastScan": dbus.Int64(1000)})

    def request_scan():
        def done():
            last = device.Get(WIRELESS_IFACE, "LastScan")
            device.Set(WIRELESS_IFACE, "LastScan", dbus.Int64(int(last) + 1000))

        _later(RADIO["step_ms"], done)

    device.fieldlink_request_scan = request_scan
    device.AddMethod(WIRELESS_IFACE, "RequestScan", "a{sv}", "", "self.fieldlink_request_scan()")
    return path


@dbus.service.method(MOCK_IFACE, in_signature="ssss", out_signature="s")
def AddWiFiConnection(self, dev_path, connection_name, ssid_name, key_mgmt):
    """The upstream profile (no secrets: an administrator's), with NetworkManager's Delete."""
    path = upstream.AddWiFiConnection(self, dev_path, connection_name, ssid_name, key_mgmt)
    _patch_connection(dbusmock.get_object(path))
    return path


# --- Profiles ----------------------------------------------------------------------------------


def _patch_connection(connection):
    connection.ConnectionDelete = _connection_delete
    connection.ConnectionGetSettings = _connection_get_settings
    connection.ConnectionGetSecrets = _connection_get_secrets


def _connection_get_settings(self):
    return {
        name: {key: value for key, value in setting.items() if key not in SECRET_KEYS}
        for name, setting in self.settings.items()
    }


def _connection_get_secrets(self, setting):
    if setting not in self.settings:
        raise dbus.exceptions.DBusException(
            f"the connection has no setting {setting}",
            name=CONNECTION_IFACE + ".InvalidSetting",
        )
    secrets = {key: value for key, value in self.settings[setting].items() if key in SECRET_KEYS}
    return {setting: dbus.Dictionary(secrets, signature="sv")}


def _connection_delete(self):
    nm = dbusmock.get_object(MANAGER_OBJ)
    for ac_path in list(nm.Get(MANAGER_IFACE, "ActiveConnections")):
        active = dbusmock.get_object(ac_path)
        if str(active.Get(ACTIVE_IFACE, "Connection")) == self.connection_path:
            _deactivate(nm, ac_path, R_CONNECTION_REMOVED)
    settings = dbusmock.get_object(SETTINGS_OBJ)
    connections = settings.Get(SETTINGS_IFACE, "Connections")
    if self.connection_path in connections:
        connections.remove(self.connection_path)
        settings.Set(SETTINGS_IFACE, "Connections", connections)
    for dev_path in nm.GetDevices():
        device = dbusmock.get_object(dev_path)
        available = device.Get(DEVICE_IFACE, "AvailableConnections")
        if self.connection_path in available:
            available.remove(self.connection_path)
            device.Set(DEVICE_IFACE, "AvailableConnections", available)
    settings.EmitSignal(SETTINGS_IFACE, "ConnectionRemoved", "o", [self.connection_path])
    self.EmitSignal(CONNECTION_IFACE, "Removed", "", [])
    nm.object_manager_emit_removed(self.connection_path)
    nm.RemoveObject(self.connection_path)


def _add_connection(nm, settings):
    settings = dbus.Dictionary(
        {str(k): dbus.Dictionary(v, signature="sv") for k, v in settings.items()}, signature="sa{sv}"
    )
    if "uuid" not in settings["connection"]:
        settings["connection"]["uuid"] = str(uuid.uuid4())
    path = f"{SETTINGS_OBJ}/fl{next(_COUNTER)}"
    nm.AddObject(
        path,
        CONNECTION_IFACE,
        {"Unsaved": False},
        [
            ("Delete", "", "", "self.ConnectionDelete(self)"),
            ("GetSettings", "", "a{sa{sv}}", "ret = self.ConnectionGetSettings(self)"),
            ("GetSecrets", "s", "a{sa{sv}}", "ret = self.ConnectionGetSecrets(self, args[0])"),
            ("Update", "a{sa{sv}}", "", "self.ConnectionUpdate(self, args[0])"),
        ],
    )
    nm.object_manager_emit_added(path)
    connection = dbusmock.get_object(path)
    connection.settings = settings
    connection.connection_path = path
    connection.ConnectionUpdate = upstream.ConnectionUpdate
    _patch_connection(connection)
    store = dbusmock.get_object(SETTINGS_OBJ)
    connections = store.Get(SETTINGS_IFACE, "Connections")
    connections.append(dbus.ObjectPath(path))
    store.Set(SETTINGS_IFACE, "Connections", connections)
    store.EmitSignal(SETTINGS_IFACE, "NewConnection", "o", [path])
    return path


# --- The radio ---------------------------------------------------------------------------------


def _device_state(device, new, reason):
    old = device.Get(DEVICE_IFACE, "State")
    device.Set(DEVICE_IFACE, "State", dbus.UInt32(new))
    device.Set(DEVICE_IFACE, "StateReason", (dbus.UInt32(new), dbus.UInt32(reason)))
    device.EmitSignal(
        DEVICE_IFACE, "StateChanged", "uuu", [dbus.UInt32(new), old, dbus.UInt32(reason)]
    )


def _active_state(ac_path, state, reason):
    if ac_path not in dbusmock.mockobject.objects:
        return
    active = dbusmock.get_object(ac_path)
    active.Set(ACTIVE_IFACE, "State", dbus.UInt32(state))
    active.EmitSignal(ACTIVE_IFACE, "StateChanged", "uu", [dbus.UInt32(state), dbus.UInt32(reason)])


def _remove_active(nm, ac_path):
    actives = nm.Get(MANAGER_IFACE, "ActiveConnections")
    if ac_path in actives:
        actives.remove(ac_path)
        nm.SetProperty(MANAGER_OBJ, MANAGER_IFACE, "ActiveConnections", actives)
    if ac_path in dbusmock.mockobject.objects:
        nm.object_manager_emit_removed(ac_path)
        nm.RemoveObject(ac_path)


def _update_connectivity(nm):
    """NONE when no device is activated any more."""
    for dev_path in nm.GetDevices():
        if dbusmock.get_object(dev_path).Get(DEVICE_IFACE, "State") == ACTIVATED:
            return
    nm.SetProperty(MANAGER_OBJ, MANAGER_IFACE, "Connectivity", dbus.UInt32(1))
    nm.SetProperty(MANAGER_OBJ, MANAGER_IFACE, "State", dbus.UInt32(20))


def _bump_generation(device):
    device.fieldlink_generation = getattr(device, "fieldlink_generation", 0) + 1
    return device.fieldlink_generation


def _deactivate(nm, ac_path, reason):
    """Takes an active connection down on its devices, at once."""
    active = dbusmock.get_object(ac_path)
    for dev_path in active.Get(ACTIVE_IFACE, "Devices"):
        device = dbusmock.get_object(dev_path)
        if str(device.Get(DEVICE_IFACE, "ActiveConnection")) != str(ac_path):
            continue
        _bump_generation(device)
        _device_state(device, DEACTIVATING, reason)
        device.Set(DEVICE_IFACE, "ActiveConnection", dbus.ObjectPath("/"))
        _device_state(device, DISCONNECTED, reason)
    _active_state(ac_path, AC_DEACTIVATED, 2)
    _remove_active(nm, ac_path)
    _update_connectivity(nm)


def _steps(device_path, generation, steps):
    """Runs `steps` one per step delay, unless the device started something else meanwhile."""
    if not steps:
        return

    def step():
        if device_path not in dbusmock.mockobject.objects:
            return
        if getattr(dbusmock.get_object(device_path), "fieldlink_generation", 0) != generation:
            return
        steps[0]()
        _steps(device_path, generation, steps[1:])

    _later(RADIO["step_ms"], step)


def _visible(device, ssid):
    for ap_path in getattr(device, "access_points", []):
        if bytes(dbusmock.get_object(ap_path).Get(AP_IFACE, "Ssid")) == ssid.encode():
            return True
    return False


def _activate(nm, conn_path, dev_path, specific):
    if str(dev_path) == "/":
        wifi = [d for d in nm.GetDevices() if dbusmock.get_object(d).Get(DEVICE_IFACE, "DeviceType") == 2]
        if not wifi:
            raise dbus.exceptions.DBusException("no device", name=MANAGER_IFACE + ".UnknownDevice")
        dev_path = wifi[0]
    device = dbusmock.get_object(dev_path)
    connection = dbusmock.get_object(conn_path)
    settings = connection.settings
    generation = _bump_generation(device)

    ac_path = f"/org/freedesktop/NetworkManager/ActiveConnection/fl{next(_COUNTER)}"
    nm.AddObject(
        ac_path,
        ACTIVE_IFACE,
        {
            "Devices": dbus.Array([dbus.ObjectPath(dev_path)], signature="o"),
            "Default6": False,
            "Default": True,
            "Type": settings["connection"]["type"],
            "Vpn": False,
            "Connection": dbus.ObjectPath(conn_path),
            "Master": dbus.ObjectPath("/"),
            "SpecificObject": dbus.ObjectPath(specific),
            "Uuid": settings["connection"]["uuid"],
            "State": dbus.UInt32(AC_ACTIVATING),
            "Id": settings["connection"]["id"],
        },
        [],
    )
    nm.object_manager_emit_added(ac_path)
    actives = nm.Get(MANAGER_IFACE, "ActiveConnections")
    actives.append(dbus.ObjectPath(ac_path))
    nm.SetProperty(MANAGER_OBJ, MANAGER_IFACE, "ActiveConnections", actives)

    def state(new, reason=R_NONE):
        return lambda: _device_state(device, new, reason)

    def start():
        device.Set(DEVICE_IFACE, "ActiveConnection", dbus.ObjectPath(ac_path))
        _device_state(device, PREPARE, R_NONE)

    def fail(reason):
        def run():
            _device_state(device, FAILED, reason)
            _active_state(ac_path, AC_DEACTIVATED, AC_REASON.get(reason, 1))
            device.Set(DEVICE_IFACE, "ActiveConnection", dbus.ObjectPath("/"))
            _device_state(device, DISCONNECTED, R_NONE)
            _remove_active(nm, ac_path)
            _update_connectivity(nm)

        return run

    def activated(fault):
        def run():
            _device_state(device, ACTIVATED, R_NONE)
            _active_state(ac_path, AC_ACTIVATED, 0)
            connectivity = CONNECTIVITY.get(fault, 4)
            nm.SetProperty(MANAGER_OBJ, MANAGER_IFACE, "Connectivity", dbus.UInt32(connectivity))
            nm.SetProperty(MANAGER_OBJ, MANAGER_IFACE, "State", dbus.UInt32(70 if connectivity == 4 else 60))

        return run

    steps = []
    old = str(device.Get(DEVICE_IFACE, "ActiveConnection"))
    if old != "/":

        def take_down():
            _device_state(device, DEACTIVATING, R_NEW_ACTIVATION)
            _device_state(device, DISCONNECTED, R_NEW_ACTIVATION)
            _active_state(old, AC_DEACTIVATED, 1)
            _remove_active(nm, old)

        steps.append(take_down)
    steps.append(start)
    kind = str(settings["connection"]["type"])
    fault = ""
    if kind == "802-11-wireless":
        wireless = settings["802-11-wireless"]
        ssid = bytes(bytearray(int(b) for b in wireless["ssid"])).decode("utf-8", "replace")
        hidden = bool(wireless.get("hidden", False))
        psk = settings.get("802-11-wireless-security", {}).get("psk")
        network = RADIO["networks"].get(ssid)
        found = _visible(device, ssid) or (hidden and network is not None)
        wrong = network is not None and network["passphrase"] and psk is not None and str(psk) != network["passphrase"]
        fault = network["fault"] if network else ""
        if not found:
            steps.append(fail(R_SSID_NOT_FOUND))
        elif wrong:
            steps += [state(CONFIG), state(NEED_AUTH), fail(R_NO_SECRETS)]
        elif fault == "stall":
            steps.append(state(CONFIG))
        elif fault == "no_dhcp":
            steps += [state(CONFIG), state(IP_CONFIG), fail(R_IP_CONFIG_UNAVAILABLE)]
        else:
            steps += [state(CONFIG), state(IP_CONFIG), state(IP_CHECK), activated(fault)]
    else:
        steps += [state(CONFIG), state(IP_CONFIG), state(IP_CHECK), activated(fault)]
    _steps(dev_path, generation, steps)
    return dbus.ObjectPath(ac_path)


def _add_and_activate(nm, settings, dev_path, specific):
    if str(dev_path) == "/":
        raise dbus.exceptions.DBusException("a device is required", name=MANAGER_IFACE + ".UnknownDevice")
    conn_path = _add_connection(nm, settings)
    return (dbus.ObjectPath(conn_path), _activate(nm, conn_path, dev_path, specific))


def load(mock, parameters):
    """The upstream template, with the radio behind (Add)ActivateConnection."""
    upstream.load(mock, parameters)
    nm = dbusmock.get_object(MANAGER_OBJ)
    nm.activate_connection = lambda self, conn, dev, ap: _activate(self, conn, dev, ap)
    nm.add_and_activate_connection = lambda self, conf, dev, ap: _add_and_activate(self, conf, dev, ap)
    nm.deactivate_connection = lambda self, ac: _deactivate(self, ac, R_USER_REQUESTED)
