# Facts about the lab that the Vagrantfile and the docs share.
module Lab
  ROOT = File.expand_path("..", __dir__)
  BOX_NAME = "zeroserve/appliance"
  BOX_FILE = File.join(ROOT, "image", "out", "zeroserve-appliance.box")
  OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
  NETWORK_NAME = "zeroserve-lab"
  MGMT_SUBNET = "198.19.250.0/24"

  # Benchmarking range (RFC 2544), never routed: the lab network forwards nothing.
  MACHINES = {
    "edge1" => "198.18.10.11",
    "edge2" => "198.18.10.12",
    "edge3" => "198.18.10.13",
    "client" => "198.18.10.100",
  }.freeze

  def self.kvm_usable?
    File.writable?("/dev/kvm")
  end

  def self.serial_log(name)
    File.join(ROOT, ".vagrant", "serial-#{name}.log")
  end

  def self.groups
    {
      "edges" => MACHINES.keys.grep(/\Aedge/),
      "clients" => MACHINES.keys.grep(/\Aclient/),
    }
  end

  # The newest wheel `maturin build --release` wrote; preflight stops the play if there is none.
  def self.wheel
    Dir.glob(File.join(ROOT, "target", "wheels", "zeroserve-*.whl")).max_by { |p| File.mtime(p) } || ""
  end

  def self.extra_vars
    {
      "zeroserve_wheel" => wheel,
      # Ansible templates this per host, so each edge names itself in its answers.
      "zeroserve_caddyfile" => ":80 {\n\trespond \"{{ inventory_hostname }}\"\n}\n",
    }
  end
end
