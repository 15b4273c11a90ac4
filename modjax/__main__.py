from absl import flags

from modjax import cli, cli_common, cli_train

__doc__ = cli.__doc__  # absl prints __main__'s docstring for --help
cli.define_flags()
flags.adopt_module_key_flags(cli)  # ...and the key flags of __main__: cli's
flags.adopt_module_key_flags(cli_train)
flags.adopt_module_key_flags(cli_common)

if __name__ == "__main__":
    cli.run()
